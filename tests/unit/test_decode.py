"""Tests for workers.decode: formats, orientation, colour modes, ICC profiles and refusals."""

from __future__ import annotations

import io
import itertools
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms, ImageFile
from skimage import color, data

from infra.errors import InputTooLarge, PermanentError, UnsupportedImage
from workers.decode import decode

LIMIT = 50_000_000


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _astronaut() -> NDArray[np.uint8]:
    photo: NDArray[np.uint8] = data.astronaut()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(photo)


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png(width: int, height: int, depth: int, color_type: int, rows: bytes = b"") -> bytes:
    """A PNG built by hand, so that its header can claim anything."""
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    idat = _png_chunk(b"IDAT", zlib.compress(rows)) if rows else b""
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + idat + _png_chunk(b"IEND", b"")


# --- hand-made ICC profiles: ImageCms can only create sRGB, Lab and XYZ ones -----------------


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    """An ICC v2.1 profile with the given tags, laid out after a 128-byte header."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, bodies = b"", b""
    for signature, body in tags.items():
        padded = body + b"\0" * (-len(body) % 4)
        entries += signature + struct.pack(">II", offset + len(bodies), len(body))
        bodies += padded
    size = 128 + table_size + len(bodies)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + bytes([2, 0x10, 0, 0])
        + device_class
        + space
        + pcs
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + b"\0" * 4
        + _s15(0.9642)
        + _s15(1.0)
        + _s15(0.8249)
    )
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + entries + bodies


def _gray_profile(gamma: float) -> bytes:
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    return _icc(
        b"mntr",
        b"GRAY",
        b"XYZ ",
        {b"wtpt": _xyz_tag(0.9642, 1.0, 0.8249), b"kTRC": curve},
    )


def _cmyk_profile(ink_to_rgb: Callable[[int, int, int, int], tuple[float, float, float]]) -> bytes:
    """A CMYK input profile whose A2B0 table maps each ink corner to ``ink_to_rgb`` (in sRGB)."""
    corners = list(itertools.product((0, 1), repeat=4))  # C varies slowest, as lut8Type wants
    rgb = np.array([[ink_to_rgb(*corner) for corner in corners]], dtype=np.float64)
    lab = color.rgb2lab(rgb)[0]
    encoded = np.stack([lab[:, 0] * 255 / 100, lab[:, 1] + 128, lab[:, 2] + 128], axis=1)
    clut = np.clip(np.round(encoded), 0, 255).astype(np.uint8).tobytes()
    ramp = bytes(range(256))
    identity = b"".join(_s15(1.0 if row == col else 0.0) for row in range(3) for col in range(3))
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + ramp * 4 + clut + ramp * 3
    return _icc(b"scnr", b"CMYK", b"Lab ", {b"wtpt": _xyz_tag(0.9642, 1.0, 0.8249), b"A2B0": lut})


def _naive_cmyk(c: int, m: int, y: int, k: int) -> tuple[float, float, float]:
    return (1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)


def _swapped_cmyk(c: int, m: int, y: int, k: int) -> tuple[float, float, float]:
    # Cyan ink absorbs green here, so a profile-aware decoder shows cyan ink as magenta.
    return (1 - y) * (1 - k), (1 - c) * (1 - k), (1 - m) * (1 - k)


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("JPEG", {"quality": 95}, 4.0),
        ("PNG", {}, 0.0),
        ("WEBP", {"quality": 95}, 4.0),
        ("WEBP", {"lossless": True}, 0.0),
        ("TIFF", {}, 0.0),
        ("TIFF", {"compression": "tiff_lzw"}, 0.0),
    ],
)
def test_round_trip_of_a_photo(fmt: str, options: dict[str, Any], tolerance: float) -> None:
    photo = _astronaut()
    decoded = decode(_save(Image.fromarray(photo), fmt, **options), max_pixels=LIMIT)
    assert decoded.source_format == fmt
    assert decoded.rgb.dtype == np.uint8
    assert decoded.rgb.shape == photo.shape
    assert decoded.rgb.flags.c_contiguous
    assert decoded.icc_profile is None
    error = np.abs(decoded.rgb.astype(np.int16) - photo).mean()
    assert error <= tolerance


def test_decoded_pixels_are_writable() -> None:
    decoded = decode(_save(Image.fromarray(_astronaut()), "PNG"), max_pixels=LIMIT)
    decoded.rgb[0, 0] = 7
    assert decoded.rgb[0, 0].tolist() == [7, 7, 7]


def test_mpo_is_reported_as_jpeg() -> None:
    first = Image.fromarray(_astronaut())
    second = Image.new("RGB", first.size, "blue")
    payload = _save(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(payload)).format == "MPO"
    decoded = decode(payload, max_pixels=LIMIT)
    assert decoded.source_format == "JPEG"
    assert np.abs(decoded.rgb.astype(np.int16) - _astronaut()).mean() < 4


def test_multi_frame_tiff_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (8, 6), name) for name in ("red", "blue")]
    payload = _save(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    decoded = decode(payload, max_pixels=LIMIT)
    assert (decoded.rgb == (255, 0, 0)).all()


# --- orientation ---------------------------------------------------------------------------------

# How each EXIF orientation stores an upright picture, from the tag's definition of where the
# stored 0th row and 0th column belong: 6 stores it turned a quarter counter-clockwise, etc.
STORED_AS: dict[int, Callable[[NDArray[np.uint8]], NDArray[np.uint8]]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: np.rot90(a, 1)[:, ::-1],
    8: lambda a: np.rot90(a, -1),
}


def _marked_picture() -> NDArray[np.uint8]:
    """A 48x80 gray picture with a red block top-left and a blue block top-right."""
    picture = np.full((48, 80, 3), 128, dtype=np.uint8)
    picture[:16, :16] = (255, 0, 0)
    picture[:16, -16:] = (0, 0, 255)
    return picture


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_exif_orientation_is_applied(orientation: int, fmt: str) -> None:
    upright = _marked_picture()
    stored = np.ascontiguousarray(STORED_AS[orientation](upright))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    payload = _save(Image.fromarray(stored), fmt, exif=exif, **options)
    decoded = decode(payload, max_pixels=LIMIT).rgb
    assert decoded.shape == upright.shape
    assert np.abs(decoded.astype(np.int16) - upright).mean() < 4
    assert decoded[4:12, 4:12].mean(axis=(0, 1)) == pytest.approx((255, 0, 0), abs=25)
    assert decoded[4:12, -12:-4].mean(axis=(0, 1)) == pytest.approx((0, 0, 255), abs=25)


def test_malformed_exif_does_not_cost_the_pixels() -> None:
    payload = _save(Image.new("RGB", (8, 4), "green"), "JPEG", exif=b"Exif\0\0garbage-here")
    decoded = decode(payload, max_pixels=LIMIT)
    assert decoded.rgb.shape == (4, 8, 3)


# --- colour modes --------------------------------------------------------------------------------


def test_grayscale_8_bit_becomes_equal_channels() -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    decoded = decode(_save(Image.fromarray(gray), "PNG"), max_pixels=LIMIT).rgb
    assert decoded.shape == (16, 16, 3)
    for channel in range(3):
        assert (decoded[..., channel] == gray).all()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_grayscale_16_bit_is_rescaled_not_clipped(fmt: str) -> None:
    samples = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(samples)
    assert image.mode == "I;16"
    decoded = decode(_save(image, fmt), max_pixels=LIMIT).rgb[0, :, 0]
    assert decoded.tolist()[0:2] == [0, 1]
    assert decoded[2] == pytest.approx(128, abs=1)
    assert decoded[3] == 255


def test_rgb_48_bit_png_keeps_the_high_bytes() -> None:
    rows = b"\0" + struct.pack(">6H", 65535, 32768, 0, 0, 257, 65535)
    decoded = decode(_png(2, 1, 16, 2, rows), max_pixels=LIMIT).rgb
    assert decoded[0, 0].tolist() == pytest.approx([255, 128, 0], abs=1)
    assert decoded[0, 1].tolist() == pytest.approx([0, 1, 255], abs=1)


def test_32_bit_integer_tiff_is_read_on_the_16_bit_scale() -> None:
    image = Image.fromarray(np.array([[0, 32768, 65535, 100_000]], dtype=np.int32))
    assert image.mode == "I"
    decoded = decode(_save(image, "TIFF"), max_pixels=LIMIT).rgb[0, :, 0]
    assert decoded.tolist() == pytest.approx([0, 128, 255, 255], abs=1)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [([0.0, 0.5, 1.0], [0, 128, 255]), ([0.0, 100.0, 300.0], [0, 100, 255])],
)
def test_float_tiff_is_scaled_by_its_range(samples: list[float], expected: list[int]) -> None:
    image = Image.fromarray(np.array([samples], dtype=np.float32))
    assert image.mode == "F"
    decoded = decode(_save(image, "TIFF"), max_pixels=LIMIT).rgb[0, :, 0]
    assert decoded.tolist() == pytest.approx(expected, abs=1)


def test_one_bit_image_becomes_black_and_white() -> None:
    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    decoded = decode(_save(bits, "PNG"), max_pixels=LIMIT).rgb
    assert decoded[0, 1].tolist() == [255, 255, 255]
    assert decoded[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_alpha_is_composited_over_white(fmt: str) -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[255, 128, 0], [255, 128, 0]]
    options = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode(_save(Image.fromarray(rgba), fmt, **options), max_pixels=LIMIT).rgb
    assert decoded[0, 0].tolist() == [200, 0, 0]
    half = 128 / 255
    assert decoded[0, 1].tolist() == pytest.approx(
        [200 * half + 255 * (1 - half), 255 * (1 - half), 255 * (1 - half)], abs=1
    )
    assert decoded[0, 2].tolist() == [255, 255, 255]


def test_gray_with_alpha_is_composited_over_white() -> None:
    gray_alpha = Image.fromarray(np.array([[[40, 255], [40, 0]]], dtype=np.uint8), mode="LA")
    decoded = decode(_save(gray_alpha, "PNG"), max_pixels=LIMIT).rgb
    assert decoded[0].tolist() == [[40, 40, 40], [255, 255, 255]]


def test_palette_png_keeps_its_colours() -> None:
    photo = Image.fromarray(_astronaut()).quantize(64)
    payload = _save(photo, "PNG")
    assert Image.open(io.BytesIO(payload)).mode == "P"
    decoded = decode(payload, max_pixels=LIMIT).rgb
    assert (decoded == np.asarray(photo.convert("RGB"))).all()


def test_palette_png_transparent_index_becomes_white() -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    payload = _save(palette, "PNG", transparency=0)
    decoded = decode(payload, max_pixels=LIMIT).rgb
    assert decoded[0].tolist() == [[255, 255, 255], [10, 20, 30]]


def test_rgb_png_transparent_colour_becomes_white() -> None:
    pixels = np.zeros((1, 2, 3), dtype=np.uint8)
    pixels[0, 1] = (10, 20, 30)
    payload = _save(Image.fromarray(pixels), "PNG", transparency=(0, 0, 0))
    decoded = decode(payload, max_pixels=LIMIT).rgb
    assert decoded[0].tolist() == [[255, 255, 255], [10, 20, 30]]


def _cyan_cmyk_jpeg(icc_profile: bytes | None = None) -> bytes:
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))
    cmyk.paste((255, 0, 0, 0), (0, 0, 8, 16))  # left half cyan ink, right half bare paper
    options = {"icc_profile": icc_profile} if icc_profile else {}
    return _save(cmyk, "JPEG", quality=95, **options)


def test_cmyk_jpeg_without_profile_decodes_to_plausible_rgb() -> None:
    decoded = decode(_cyan_cmyk_jpeg(), max_pixels=LIMIT)
    red, green, blue = decoded.rgb[4, 2].tolist()
    assert red < 60 and green > 190 and blue > 190  # cyan: bluish green
    assert decoded.rgb[4, 13].min() > 230  # paper stays white
    assert decoded.icc_profile is None


def test_cmyk_jpeg_is_converted_through_its_profile() -> None:
    decoded = decode(_cyan_cmyk_jpeg(_cmyk_profile(_swapped_cmyk)), max_pixels=LIMIT)
    red, green, blue = decoded.rgb[4, 2].tolist()
    assert red > 190 and green < 100 and blue > 190  # the profile says this ink is magenta
    assert decoded.rgb[4, 13].min() > 230
    assert decoded.icc_profile is None  # the pixels are sRGB now


def test_cmyk_profile_with_plain_inks_also_gives_cyan() -> None:
    decoded = decode(_cyan_cmyk_jpeg(_cmyk_profile(_naive_cmyk)), max_pixels=LIMIT)
    red, green, blue = decoded.rgb[4, 2].tolist()
    assert red < 90 and green > 190 and blue > 190


def test_cmyk_with_an_rgb_profile_ignores_the_profile() -> None:
    decoded = decode(_cyan_cmyk_jpeg(_srgb_profile()), max_pixels=LIMIT)
    red, green, blue = decoded.rgb[4, 2].tolist()
    assert red < 60 and green > 190 and blue > 190
    assert decoded.icc_profile is None


def test_gray_profile_is_applied_and_dropped() -> None:
    gray = Image.new("L", (4, 4), 128)
    linear = decode(_save(gray, "PNG", icc_profile=_gray_profile(1.0)), max_pixels=LIMIT)
    plain = decode(_save(gray, "PNG"), max_pixels=LIMIT)
    assert plain.rgb[0, 0].tolist() == [128, 128, 128]
    # Linear 50% gray is much lighter in sRGB's gamma-encoded terms (about 188).
    assert linear.rgb[0, 0].min() > 170
    assert linear.icc_profile is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_rgb_icc_profile_is_kept(fmt: str) -> None:
    profile = _srgb_profile()
    photo = _astronaut()
    payload = _save(Image.fromarray(photo), fmt, icc_profile=profile)
    decoded = decode(payload, max_pixels=LIMIT)
    assert decoded.icc_profile == profile
    assert np.abs(decoded.rgb.astype(np.int16) - photo).mean() < 6  # pixels left alone


def test_broken_icc_profile_is_dropped() -> None:
    payload = _save(Image.new("RGB", (4, 4), "red"), "PNG", icc_profile=b"not a profile at all")
    decoded = decode(payload, max_pixels=LIMIT)
    assert decoded.icc_profile is None
    assert decoded.rgb[0, 0].tolist() == [255, 0, 0]


# --- size limits -----------------------------------------------------------------------------


def test_huge_header_is_refused_as_too_large() -> None:
    with pytest.raises(InputTooLarge, match="pixels") as raised:
        decode(_png(100_000, 100_000, 8, 2), max_pixels=LIMIT)
    assert f"{LIMIT:,}" in str(raised.value)
    assert isinstance(raised.value, PermanentError)


@pytest.mark.parametrize("side", [5_000, 10_000])  # 10k x 10k is inside Pillow's warning band
def test_size_is_checked_before_pixels_are_loaded(
    side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[object] = []
    original = ImageFile.ImageFile.load

    def spying_load(self: ImageFile.ImageFile) -> Any:
        loads.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spying_load)
    with pytest.raises(InputTooLarge) as raised:
        decode(_png(side, side, 8, 2), max_pixels=1_000_000)
    assert f"{side}x{side}" in str(raised.value)
    assert "1,000,000" in str(raised.value)
    assert loads == []


def test_webp_canvas_size_is_checked_before_pillow_opens_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[object] = []

    def refusing_open(*args: object, **kwargs: object) -> None:
        opened.append(args)

    monkeypatch.setattr(Image, "open", refusing_open)
    header = b"VP8X" + struct.pack("<I", 10) + b"\0" * 4
    header += (12_000 - 1).to_bytes(3, "little") + (12_000 - 1).to_bytes(3, "little")
    payload = b"RIFF" + struct.pack("<I", 4 + len(header)) + b"WEBP" + header
    with pytest.raises(InputTooLarge, match="12000x12000"):
        decode(payload, max_pixels=LIMIT)
    assert opened == []


def test_image_exactly_at_the_limit_is_accepted() -> None:
    payload = _save(Image.new("RGB", (20, 10), "white"), "PNG")
    assert decode(payload, max_pixels=200).rgb.shape == (10, 20, 3)
    with pytest.raises(InputTooLarge):
        decode(payload, max_pixels=199)


def test_max_pixels_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        decode(b"anything", max_pixels=0)


# --- refusals ------------------------------------------------------------------------------------


def _truncated_jpeg() -> bytes:
    whole = _save(Image.fromarray(_astronaut()), "JPEG", quality=90)
    return whole[: len(whole) // 2]


def _truncated_png() -> bytes:
    whole = _save(Image.fromarray(_astronaut()), "PNG")
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("make_payload", "reason"),
    [
        (lambda: b"", "empty"),
        (lambda: os.urandom(4096), "cannot identify image format"),
        (lambda: b"<!DOCTYPE html><html><body>Not found</body></html>", "detected: HTML"),
        (lambda: _save(Image.new("RGB", (8, 8), "red"), "GIF"), "detected: GIF"),
        (lambda: _save(Image.new("RGB", (8, 8), "red"), "BMP"), "detected: BMP"),
        (_truncated_jpeg, "corrupt or truncated JPEG"),
        (_truncated_png, "corrupt or truncated PNG"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt or truncated PNG"),
        (lambda: b"\xff\xd8\xff\xe0" + b"\0" * 5, "JPEG"),
        (lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64), "detected: HEIC"),
        (lambda: b"\0\0\0\x1cftypavif\0\0\0\0avifmif1" + bytes(64), "detected: AVIF"),
        (lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "detected: PDF"),
        (lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>', "detected: SVG"),
    ],
    ids=[
        *("empty", "random", "html", "gif", "bmp", "cut-jpeg", "cut-png", "bad-png", "stub-jpeg"),
        *("heic", "avif", "pdf", "svg"),
    ],
)
def test_undecodable_bytes_are_unsupported(make_payload: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(UnsupportedImage, match=reason) as raised:
        decode(make_payload(), max_pixels=LIMIT)
    message = str(raised.value)
    assert "\n" not in message and message == message.strip()
    assert isinstance(raised.value, PermanentError)


def test_decode_leaves_truncated_image_loading_off() -> None:
    decode(_save(Image.new("RGB", (4, 4)), "JPEG"), max_pixels=LIMIT)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
