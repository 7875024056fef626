"""E-commerce backgrounds (white, a colour, transparent), matte export and brought mattes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydantic import ValidationError

from infra.errors import InputTooLarge, InvalidJob, UnsupportedImage
from infra.jobs import BlurParams, Job, matte_key
from infra.storage import S3Uri, StoredObject
from workers.colour import to_srgb
from workers.encode import encode, encode_matte
from workers.matting import estimate_foreground
from workers.own_matte import decode_matte
from workers.pipeline import Found, _output_key
from workers.render import render

SHAPE = (48, 64)


def scene() -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """A textured photo; its matte: 0 left, 1 right, a soft ramp between."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    alpha = np.zeros(SHAPE, np.float32)
    alpha[:, 32:] = 1.0
    alpha[:, 24:32] = np.linspace(0.1, 0.9, 8, dtype=np.float32)
    return rgb, alpha


def png(pixels: NDArray[np.generic]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_white_background_where_alpha_is_0_and_the_subject_unchanged_where_1() -> None:
    rgb, alpha = scene()
    out = render(rgb, alpha, BlurParams(background="white"))
    assert out.shape == (*SHAPE, 3)
    assert (out[:, :24] == 255).all()
    assert np.array_equal(out[:, 32:], rgb[:, 32:])


def test_a_colour_background_and_the_blend_in_linear_light() -> None:
    rgb, alpha = scene()
    out = render(rgb, alpha, BlurParams(background="#1020f0"))
    assert (out[:, :24] == (16, 32, 240)).all()
    black = np.zeros((4, 4, 3), np.uint8)
    half = render(black, np.full((4, 4), 0.5, np.float32), BlurParams(background="white"))
    assert (half == to_srgb(np.full(1, 0.5, np.float32))[0]).all()  # 188, not 128


def test_transparent_gives_the_foreground_with_the_matte_as_alpha() -> None:
    rgb, alpha = scene()
    out = render(rgb, alpha, BlurParams(background="transparent", format="png"))
    assert out.shape == (*SHAPE, 4)
    assert np.array_equal(out[..., 3], np.round(alpha * 255).astype(np.uint8))
    assert np.array_equal(out[..., :3], estimate_foreground(rgb, alpha))


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_rgba_is_encoded_with_its_alpha_and_icc_profile(fmt: str) -> None:
    rgb, alpha = scene()
    rgba = render(rgb, alpha, BlurParams(background="transparent", format=fmt))
    data = encode(rgba, fmt=fmt, quality=100, icc_profile=b"not checked by the encoder")
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"
        assert image.info.get("icc_profile") == b"not checked by the encoder"
        decoded = np.asarray(image)
    tolerance = 0 if fmt == "png" else 3  # lossy WebP
    assert np.abs(decoded[..., 3].astype(int) - rgba[..., 3]).max() <= tolerance
    with pytest.raises(ValueError, match="H x W x 3"):
        encode(rgba, fmt="jpeg")


def test_transparent_with_jpeg_is_refused_everywhere() -> None:
    from producer.http.schemas import Params

    with pytest.raises(InvalidJob, match="transparent"):
        BlurParams(background="transparent")
    for bad in ("red", "#12345", "#1234567", "#gggggg"):
        with pytest.raises(InvalidJob, match="background must look like"):
            BlurParams(background=bad)
        with pytest.raises(ValidationError):
            Params(background=bad)
    with pytest.raises(InvalidJob, match="transparent"):  # the HTTP route's step: a 422
        BlurParams(**Params(background="transparent").model_dump())
    assert BlurParams(background="transparent", format="webp").background == "transparent"


def test_the_matte_is_exported_as_8_bit_grey_beside_the_output() -> None:
    _, alpha = scene()
    data = encode_matte(np.round(alpha * 255).astype(np.uint8))
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (SHAPE[1], SHAPE[0]))
    assert matte_key("out/a/b.0123abcd.jpg") == "out/a/b.0123abcd.matte.png"


def test_a_brought_matte_is_decoded_at_the_photos_size() -> None:
    _, alpha = scene()
    eight = np.round(alpha * 255).astype(np.uint8)
    decoded = decode_matte(png(eight), SHAPE, max_pixels=10**6)
    assert np.abs(decoded - eight / 255.0).max() < 1e-6
    sixteen = decode_matte(png((alpha * 65535).astype(np.uint16)), SHAPE, max_pixels=10**6)
    assert np.abs(sixteen - alpha).max() < 1e-4 and sixteen.dtype == np.float32


def test_a_malformed_matte_fails_with_a_clear_reason() -> None:
    with pytest.raises(UnsupportedImage, match="matte is 32x48, photo is 64x48"):
        decode_matte(png(np.zeros((48, 32), np.uint8)), SHAPE, max_pixels=10**6)
    with pytest.raises(UnsupportedImage, match="matte is not a readable image"):
        decode_matte(b"<html>no</html>", SHAPE, max_pixels=10**6)
    with pytest.raises(InputTooLarge, match="matte"):  # refused from the header alone
        decode_matte(png(np.zeros(SHAPE, np.uint8)), SHAPE, max_pixels=1000)


def test_the_output_key_changes_with_the_mattes_etag() -> None:
    job = Job("b1", "000001", "in", "a/b.jpg", "out", "o/", BlurParams(matte_suffix=".matte.png"))
    photo = StoredObject(b"", "photo-etag")

    def key(found: Found) -> str:
        return _output_key(job, None, found)

    one = key(Found(photo, None, StoredObject(b"", "matte-1")))
    assert one != key(Found(photo, None, StoredObject(b"", "matte-2")))
    assert one != key(Found(photo, StoredObject(b"", "matte-1"), None))
    assert one.startswith("o/a/b.")


class Recording:
    """A tenant that allows everything and records what it was asked to allow."""

    name = "default"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def check_read(self, uri: S3Uri, what: str = "input") -> None:
        self.asked.append(f"{what} {uri}")

    def may_read(self, uri: S3Uri) -> bool:
        self.asked.append(f"read {uri}")
        return True

    def may_write(self, uri: S3Uri) -> bool:
        return True

    def get(self, name: str) -> Recording:
        return self


def test_brought_mattes_are_confined_like_depth_maps_on_both_sides() -> None:
    from producer import inputs
    from workers.pipeline import confine

    tenant = Recording()
    output = S3Uri("shop", "out/")
    inputs.confine_found(tenant, [S3Uri("shop", "a/x.jpg")], None, output, ".m.png")  # type: ignore[arg-type]
    assert tenant.asked == ["input s3://shop/a/x.jpg", "matte s3://shop/a/x.m.png"]
    params = BlurParams(matte_suffix=".m.png", depth_suffix=".d.png")
    worker = Recording()
    confine(Job("b", "1", "shop", "a/x.jpg", "shop", "out/", params), worker)  # type: ignore[arg-type]
    assert worker.asked[1:] == ["read s3://shop/a/x.d.png", "read s3://shop/a/x.m.png"]
    with pytest.raises(InvalidJob, match="matte suffix must look like"):
        BlurParams(matte_suffix="/../../other/x.png")  # no way out of the input's folder
