"""Tests for workers.encode: formats, settings, ICC embedding, determinism and validation."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms, JpegImagePlugin
from skimage import data

from workers.decode import decode
from workers.encode import OUTPUT_FORMATS, content_type, encode, extension

LIMIT = 50_000_000
PILLOW_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def _astronaut() -> NDArray[np.uint8]:
    photo: NDArray[np.uint8] = data.astronaut()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(photo)


def _open(payload: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(payload))
    image.load()
    return image


def _mean_error(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_output_opens_as_the_requested_format(fmt: str) -> None:
    photo = _astronaut()
    image = _open(encode(photo, fmt=fmt, quality=95))
    assert image.format == PILLOW_FORMAT[fmt]
    assert image.mode == "RGB"
    assert image.size == (photo.shape[1], photo.shape[0])
    tolerance = 0.0 if fmt == "png" else 4.0
    assert _mean_error(np.asarray(image), photo) <= tolerance


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_round_trip_through_decode(fmt: str) -> None:
    photo = _astronaut()
    decoded = decode(encode(photo, fmt=fmt, quality=95), max_pixels=LIMIT)
    assert decoded.source_format == PILLOW_FORMAT[fmt]
    assert _mean_error(decoded.rgb, photo) <= (0.0 if fmt == "png" else 4.0)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_encoding_is_deterministic(fmt: str) -> None:
    photo = _astronaut()
    first = encode(photo, fmt=fmt, quality=80)
    assert encode(photo.copy(), fmt=fmt, quality=80) == first


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_size(fmt: str) -> None:
    photo = _astronaut()
    sizes = [len(encode(photo, fmt=fmt, quality=quality)) for quality in (20, 60, 95)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_jpeg_quality_changes_fidelity() -> None:
    photo = _astronaut()
    low = _mean_error(np.asarray(_open(encode(photo, quality=20))), photo)
    high = _mean_error(np.asarray(_open(encode(photo, quality=95))), photo)
    assert high < low


@pytest.mark.parametrize(("quality", "full_chroma"), [(89, False), (90, True), (100, True)])
def test_jpeg_chroma_subsampling_follows_quality(quality: int, full_chroma: bool) -> None:
    image = _open(encode(_astronaut(), quality=quality))
    assert isinstance(image, JpegImagePlugin.JpegImageFile)
    sampling = JpegImagePlugin.get_sampling(image)
    if full_chroma:
        assert sampling == 0  # Pillow's code for 4:4:4
    else:
        assert sampling == 2  # Pillow's code for 4:2:0


def test_jpeg_is_baseline_and_huffman_optimised() -> None:
    photo = _astronaut()
    payload = encode(photo, quality=85)
    assert "progressive" not in _open(payload).info
    unoptimised = io.BytesIO()
    Image.fromarray(photo).save(unoptimised, "JPEG", quality=85, subsampling="4:2:0")
    assert len(payload) < len(unoptimised.getvalue())


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_icc_profile_is_embedded(fmt: str) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    payload = encode(_astronaut(), fmt=fmt, icc_profile=profile)
    assert _open(payload).info.get("icc_profile") == profile
    assert decode(payload, max_pixels=LIMIT).icc_profile == profile


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_no_icc_profile_unless_given(fmt: str) -> None:
    assert not _open(encode(_astronaut(), fmt=fmt)).info.get("icc_profile")


def test_non_contiguous_pixels_are_accepted() -> None:
    photo = _astronaut()
    view = photo[::2, ::3]
    assert not view.flags.c_contiguous
    image = _open(encode(view, fmt="png"))
    assert (np.asarray(image) == view).all()


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_content_type_and_extension_agree_with_pillow(fmt: str) -> None:
    image = _open(encode(_astronaut(), fmt=fmt))
    assert content_type(fmt) == Image.MIME[image.format or ""]
    assert f".{extension(fmt)}" in Image.registered_extensions()
    assert Image.registered_extensions()[f".{extension(fmt)}"] == image.format


def test_format_names_are_case_insensitive_and_accept_jpg() -> None:
    photo = np.zeros((4, 4, 3), dtype=np.uint8)
    assert encode(photo, fmt="JPG") == encode(photo, fmt="jpeg")
    assert extension("JPEG") == extension("jpg")
    assert content_type("PNG") == content_type("png")


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 3), dtype=np.uint16), "uint8"),
        (np.zeros((4, 4), dtype=np.uint8), "H x W x 3"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "H x W x 3"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "empty"),
        ([[[0, 0, 0]]], "got list"),
    ],
)
def test_bad_pixels_are_refused(pixels: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(pixels)


@pytest.mark.parametrize("quality", [0, 101, -5, 92.5, True, "92", None])
def test_bad_quality_is_refused(quality: Any) -> None:
    with pytest.raises(ValueError, match="quality"):
        encode(np.zeros((4, 4, 3), dtype=np.uint8), quality=quality)


@pytest.mark.parametrize("quality", [1, 100, np.int64(50)])
def test_quality_bounds_are_inclusive(quality: Any) -> None:
    assert _open(encode(np.zeros((4, 4, 3), dtype=np.uint8), quality=quality)).format == "JPEG"


@pytest.mark.parametrize("fmt", ["gif", "bmp", "tiff", "", None])
def test_bad_format_is_refused(fmt: Any) -> None:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="format"):
        encode(pixels, fmt=fmt)
    with pytest.raises(ValueError, match="format"):
        content_type(fmt)
    with pytest.raises(ValueError, match="format"):
        extension(fmt)


def test_icc_profile_must_be_bytes() -> None:
    with pytest.raises(ValueError, match="icc_profile"):
        encode(np.zeros((4, 4, 3), dtype=np.uint8), icc_profile="sRGB")  # type: ignore[arg-type]


def test_webp_side_limit_is_explained() -> None:
    wide = np.zeros((1, 16_384, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="too large for WEBP"):
        encode(wide, fmt="webp")
    assert _open(encode(wide, fmt="png")).size == (16_384, 1)


def test_encoding_does_not_modify_the_input() -> None:
    photo = _astronaut()
    before = photo.copy()
    for fmt in OUTPUT_FORMATS:
        encode(photo, fmt=fmt)
    assert (photo == before).all()


def test_rgba_is_written_exactly_as_png_and_refused_where_no_alpha_fits() -> None:
    rgba = np.dstack([_astronaut()[:64, :64], np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))])
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = _open(encode(rgba, fmt="png", icc_profile=profile))
    assert image.mode == "RGBA" and image.info["icc_profile"] == profile
    assert np.array_equal(np.asarray(image), rgba)
    with pytest.raises(ValueError, match="H x W x 3 uint8 array for jpeg"):
        encode(rgba, fmt="jpeg")
    with pytest.raises(ValueError, match="H x W x 3 or H x W x 4"):
        encode(np.zeros((4, 4, 5), np.uint8), fmt="png")
