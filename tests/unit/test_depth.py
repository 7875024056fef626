"""Depth maps given with a photo: decoding, scaling, refusal of what does not fit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from infra.errors import UnsupportedImage
from workers.depth import decode_depth, depth_key


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
