"""Mattes brought with a batch (``matte_suffix``): used instead of a matting model.

A user with better mattes from elsewhere gets blurq's rendering on them. A matte is an 8- or
16-bit grayscale image (white = subject) of exactly the photo's size; its header is checked
against the same pixel limit as photos before any pixel is decoded. A matte that is missing,
unreadable or of another size fails its image with a reason that says so.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.errors import InputTooLarge, UnsupportedImage
from workers.decode import image_size

_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


def decode_matte(data: bytes, shape: tuple[int, int], *, max_pixels: int) -> NDArray[np.float32]:
    """Matte bytes → H×W float32 in [0, 1] for a photo of shape (H, W).

    Raises ``InputTooLarge`` when the header says more than ``max_pixels`` pixels, and
    ``UnsupportedImage`` when the matte is unreadable or not the photo's size.
    """
    try:
        width, height = image_size(data, max_pixels=max_pixels)
    except InputTooLarge as error:
        raise InputTooLarge(f"matte: {error}") from None
    except UnsupportedImage as error:
        raise UnsupportedImage(
            f"matte is not a readable image ({len(data)} bytes): {error}"
        ) from None
    if (height, width) != shape:
        raise UnsupportedImage(
            f"matte is {width}x{height}, photo is {shape[1]}x{shape[0]}: they must be the same size"
        )
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if raw is None or raw.shape != shape:
        raise UnsupportedImage(f"matte is not a readable grayscale image ({len(data)} bytes)")
    alpha = raw.astype(np.float32) / _FULL_SCALE.get(raw.dtype.name, 1.0)
    return np.ascontiguousarray(np.clip(alpha, 0.0, 1.0), np.float32)
