"""Depth maps given with a photo: bytes in, a float32 map at the photo's size out.

The convention is the one ``render_bokeh`` takes: 0 (black) is the subject's plane, 1 (white) is
infinity, so the blur radius of a pixel is ``depth × R∞``. 8- and 16-bit grayscale PNG, JPEG or
TIFF are read; a map of another size (depth estimators often work at lower resolution) is resized
bilinearly to the photo's size, and a map of another aspect ratio is refused.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.errors import UnsupportedImage

_ASPECT_TOLERANCE = 0.02
_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


def decode_depth(data: bytes, shape: tuple[int, int]) -> NDArray[np.float32]:
    """Depth map bytes → H×W float32 in [0, 1] for a photo of shape (H, W)."""
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


def depth_key(input_key: str, suffix: str) -> str:
    """The key of an input's depth map: the input key without its extension, plus suffix."""
    stem, dot, extension = input_key.rpartition(".")
    base = stem if dot and "/" not in extension else input_key
    return f"{base}{suffix}"
