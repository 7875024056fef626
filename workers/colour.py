"""The sRGB transfer function as lookup tables: bytes to linear light and back, exactly.

Blur and compositing happen in linear light (light adds linearly; sRGB bytes do not). Decoding is
a 256-entry table; encoding goes through 16-bit linear codes, which keep the darkest sRGB steps
(3e-4 apart) distinct, so that decode then encode is the identity on all 256 byte values.
"""

from __future__ import annotations

from typing import TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

FloatT = TypeVar("FloatT", np.float32, np.float64)


def _srgb_to_linear(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: NDArray[FloatT]) -> NDArray[FloatT]:
    """The sRGB encoding curve, 0..1 in and out (float32 or float64, computed in that type)."""
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


DECODE = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
"""Linear light of each sRGB byte value; use with ``cv2.LUT``."""
_STRIP_SAMPLES = 1 << 18  # samples encoded per step of to_srgb
ENCODE = np.round(255 * linear_to_srgb(np.arange(65536) / 65535.0)).astype(np.uint8)
"""sRGB byte of each 16-bit linear code (linear light × 65535, rounded): ``to_srgb``'s table."""


def to_srgb(lin: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Linear light (any shape, clipped to [0, 1]) to sRGB bytes, deterministically."""
    # one channel, so that OpenCV applies the scalar to every sample, not just the first channel
    flat = np.ascontiguousarray(lin).reshape(lin.shape[0], -1)
    codes = cv2.multiply(flat, 65535.0, dtype=cv2.CV_16U)  # type: ignore[call-overload]
    out = np.empty(codes.shape, np.uint8)
    # In strips: np.take widens its indices to int64, and at 12 MP one pass would allocate (and
    # page-fault in) a 288 MB temporary on every call; strips keep it small and in cache.
    rows = max(1, _STRIP_SAMPLES // max(1, codes.shape[1]))
    for top in range(0, codes.shape[0], rows):
        np.take(ENCODE, codes[top : top + rows], out=out[top : top + rows])
    return out.reshape(lin.shape)
