"""Depth behind the subject: maps given with a photo, and the proxy used without one.

The convention is the one ``render_bokeh`` takes: 0 (black) is the subject's plane, 1 (white) is
infinity, so the blur radius of a pixel is ``depth × R∞``. 8- and 16-bit grayscale PNG, JPEG,
WebP or TIFF are read; the header's size is checked against the same pixel limit as photos before
any pixel is decoded. A map of another size (depth estimators often work at lower resolution) is
resized bilinearly to the photo's size, and a map of another aspect ratio is refused.

Without a map, ``proxy_depth`` guesses depth from the distance to the subject: 0.4 right next to
it, rising to 1 (infinity) at a quarter of the long side.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.errors import InputTooLarge, UnsupportedImage
from workers.arrays import f32
from workers.decode import image_size

_ASPECT_TOLERANCE = 0.02
_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}
_NEAR_DEPTH = 0.4  # proxy depth of background touching the subject
_FAR_DISTANCE = 0.25  # proxy: distance from the subject, per long side, that counts as infinity


def decode_depth(data: bytes, shape: tuple[int, int], *, max_pixels: int) -> NDArray[np.float32]:
    """Depth map bytes → H×W float32 in [0, 1] for a photo of shape (H, W).

    Raises ``InputTooLarge`` when the map's header says more than ``max_pixels`` pixels, and
    ``UnsupportedImage`` when it is unreadable or its aspect ratio differs from the photo's.
    """
    _check_header(data, max_pixels)
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if raw is None or raw.ndim != 2 or raw.size == 0:
        raise UnsupportedImage(f"depth map is not a readable grayscale image ({len(data)} bytes)")
    depth = np.clip(raw.astype(np.float32) / _FULL_SCALE.get(raw.dtype.name, 1.0), 0.0, 1.0)
    height, width = shape
    if abs(depth.shape[1] / depth.shape[0] - width / height) > _ASPECT_TOLERANCE * width / height:
        raise UnsupportedImage(
            f"depth map is {depth.shape[1]}x{depth.shape[0]}, photo is {width}x{height}: "
            "the aspect ratios differ"
        )
    if depth.shape != shape:
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(depth, np.float32)


def _check_header(data: bytes, max_pixels: int) -> None:
    """Refuse a map the photo decoder would refuse from its header (a bomb, an unknown format)."""
    try:
        image_size(data, max_pixels=max_pixels)
    except InputTooLarge as error:
        raise InputTooLarge(f"depth map: {error}") from None
    except UnsupportedImage as error:
        raise UnsupportedImage(
            f"depth map is not a readable grayscale image ({len(data)} bytes): {error}"
        ) from None


def depth_range(
    alpha: NDArray[np.float32], depth: NDArray[np.float32] | None
) -> tuple[float, float]:
    """Nearest and farthest depth of the background (the proxy spans its fixed range)."""
    if depth is None:
        return _NEAR_DEPTH, 1.0
    behind = alpha < 0.5  # the subject's own depth must not force a useless in-focus layer
    nearest = float(np.min(depth, where=behind, initial=1.0))
    return nearest, float(np.max(depth, where=behind, initial=0.0))


def proxy_depth(
    alpha: NDArray[np.float32], px_per_cell: float, long_side: int
) -> NDArray[np.float32]:
    """Guess depth from the distance to the subject: near background blurs less than far.

    ``alpha`` is the matte on a grid of cells ``px_per_cell`` photo pixels wide; the result is
    float32 of its shape.
    """
    outside = (alpha < 0.5).astype(np.uint8)
    if outside.all():
        return np.ones_like(alpha)
    dist = f32(cv2.distanceTransform(outside, cv2.DIST_L2, 5)) * (px_per_cell / long_side)
    ramp = np.clip(dist / _FAR_DISTANCE, 0.0, 1.0)
    return f32(_NEAR_DEPTH + (1.0 - _NEAR_DEPTH) * ramp)
