"""Depth maps given with a photo: decoding, scaling, refusal of what does not fit or is hostile."""

from __future__ import annotations

import struct
import zlib
from functools import partial

import cv2
import numpy as np
import pytest

from infra.errors import InputTooLarge, PermanentError, UnsupportedImage
from infra.jobs import depth_key
from workers.bokeh import depth

LIMIT = 50_000_000
decode_depth = partial(depth.decode_depth, max_pixels=LIMIT)


def png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    assert ok
    return data.tobytes()


def test_8_and_16_bit_maps_scale_to_unit_range() -> None:
    ramp8 = np.tile(np.array([0, 128, 255], np.uint8), (2, 1))
    assert np.allclose(decode_depth(png(ramp8), (2, 3))[0], [0.0, 128 / 255, 1.0])
    ramp16 = np.tile(np.array([0, 32768, 65535], np.uint16), (2, 1))
    depth = decode_depth(png(ramp16), (2, 3))
    assert depth.dtype == np.float32 and np.allclose(depth[0], [0.0, 32768 / 65535, 1.0])


def test_a_smaller_map_of_the_same_aspect_is_resized() -> None:
    small = np.zeros((30, 40), np.uint8)
    small[:, 20:] = 255
    depth = decode_depth(png(small), (300, 400))
    assert depth.shape == (300, 400)
    assert depth[:, :190].max() == 0.0 and depth[:, 210:].min() == 1.0


def test_what_does_not_fit_is_refused() -> None:
    with pytest.raises(UnsupportedImage, match="aspect"):
        decode_depth(png(np.zeros((30, 30), np.uint8)), (300, 400))
    with pytest.raises(UnsupportedImage, match="not a readable"):
        decode_depth(b"definitely not a png", (10, 10))


def _png_header(width: int, height: int, bit_depth: int = 16) -> bytes:
    """A grayscale PNG that claims width x height in its header; its pixel data is cut short."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    pixels = zlib.compress(bytes(4096))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        # a 30000 x 30000 16-bit map fits in a few KB, and would decode to 1.8 GB
        (30_000, 30_000, "900,000,000 pixels, over the limit of 50,000,000"),
        (8_000, 8_000, "8000x8000 = 64,000,000 pixels, over the limit of 50,000,000"),
        (50_001, 1_000, "50001x1000"),
    ],
)
def test_a_map_over_the_pixel_limit_is_refused_from_its_header(
    width: int, height: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object) -> None:
        raise AssertionError("the map's pixels were decoded")

    monkeypatch.setattr(depth.cv2, "imdecode", no_decoding)
    hostile = _png_header(width, height)
    assert len(hostile) < 10_000
    with pytest.raises(InputTooLarge, match=message) as refused:
        decode_depth(hostile, (height, width))
    assert isinstance(refused.value, PermanentError)
    assert str(refused.value).startswith("depth map: ")


def test_the_limit_is_the_callers() -> None:
    ramp = np.tile(np.arange(100, dtype=np.uint8), (100, 1))
    assert depth.decode_depth(png(ramp), (100, 100), max_pixels=10_000).shape == (100, 100)
    with pytest.raises(InputTooLarge, match="10,000 pixels, over the limit of 9,999"):
        depth.decode_depth(png(ramp), (100, 100), max_pixels=9_999)


def test_only_the_photo_formats_are_read() -> None:
    ok, bmp = cv2.imencode(".bmp", np.zeros((10, 10), np.uint8))
    assert ok
    with pytest.raises(UnsupportedImage, match=r"not a readable.*detected: BMP"):
        decode_depth(bmp.tobytes(), (10, 10))
    with pytest.raises(UnsupportedImage, match="not a readable"):
        decode_depth(b"", (10, 10))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a/b.jpg", "a/b.depth.png"),
        ("noext", "noext.depth.png"),
        ("dir.v2/file", "dir.v2/file.depth.png"),
        ("x.tar.jpg", "x.tar.depth.png"),
    ],
)
def test_depth_key_replaces_the_extension(key: str, expected: str) -> None:
    assert depth_key(key, ".depth.png") == expected
