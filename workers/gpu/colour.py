"""sRGB bytes to linear light and back on the backend's arrays, exactly as ``workers.colour``.

Decoding is ``workers.colour.DECODE`` looked up; encoding goes through the same 16-bit linear
codes (rounded to nearest, clipped) and ``workers.colour``'s table of them, so the GPU path and
the OpenCV path give the same bytes for the same linear light.
"""

from __future__ import annotations

from workers.colour import DECODE, ENCODE
from workers.gpu.backend import Array, Backend
from workers.gpu.resample import lut


def to_linear(backend: Backend, rgb: Array) -> Array:
    """sRGB bytes (uint8, any shape) to float32 linear light."""
    return lut(backend, DECODE, rgb)


def to_srgb(backend: Backend, lin: Array) -> Array:
    """Linear light (float32, any shape, clipped to [0, 1]) to sRGB bytes."""
    xp = backend.xp
    # the product in float64, as OpenCV's multiply takes it: float32 rounds some codes the other way
    codes = xp.clip(xp.rint(lin.astype(xp.float64) * 65535.0), 0.0, 65535.0).astype(xp.uint16)
    return lut(backend, ENCODE, codes)
