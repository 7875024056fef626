"""The array contract the image stages share: checks on entry, sizes, resizing.

A photo is H×W×3 uint8 RGB; a matte (alpha) or depth map is H×W float32 in [0, 1], the photo's
size. Sizes are ``(width, height)``, as OpenCV takes them.
"""

from __future__ import annotations

from typing import Any, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

ScalarT = TypeVar("ScalarT", np.uint8, np.uint16, np.float32)


def f32(img: object) -> NDArray[np.float32]:
    """Type an OpenCV result as the float32 array it is (the stubs say a generic Mat)."""
    return np.asarray(img, dtype=np.float32)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The (width, height) of a width×height image scaled by scale, at least 1×1."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(
    img: NDArray[ScalarT], size: tuple[int, int], interpolation: int | None = None
) -> NDArray[ScalarT]:
    """Resize to size = (width, height); the same array back when it already has that size.

    Without an interpolation: area averaging when shrinking (no aliasing), bilinear when enlarging.
    """
    width, height = size
    if (img.shape[1], img.shape[0]) == size:
        return img
    if interpolation is None:
        shrinking = width <= img.shape[1] and height <= img.shape[0]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(img, size, interpolation=interpolation), dtype=img.dtype)


def check_photo(rgb: object, name: str = "rgb") -> tuple[int, int]:
    """Raise ValueError unless rgb is a non-empty H×W×3 uint8 array; returns (H, W).

    Any array namespace's array passes: NumPy's, or CuPy's on the GPU path (``workers.gpu``).
    """
    dtype, shape = getattr(rgb, "dtype", None), getattr(rgb, "shape", None)
    if dtype != np.uint8 or shape is None or len(shape) != 3:
        got = f"{dtype} {shape}" if shape is not None else type(rgb).__name__
        raise ValueError(f"{name} must be an H x W x 3 uint8 array, got {got}")
    if shape[2] != 3 or min(shape[:2]) < 1:
        raise ValueError(f"{name} must be a non-empty H x W x 3 uint8 array, got shape {shape}")
    return int(shape[0]), int(shape[1])


def check_array(
    name: str, arr: object, dtype: type[Any], shape: tuple[int, ...], *, unit_range: bool = False
) -> None:
    """Raise ValueError unless arr has this dtype and shape (and values in [0, 1] if asked)."""
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
        got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{name} must be a {np.dtype(dtype)} array of shape {shape}, got {got}")
    if unit_range and not (arr.min() >= 0.0 and arr.max() <= 1.0):  # NaN fails this too
        raise ValueError(f"{name} must lie in [0, 1], got [{arr.min()}, {arr.max()}]")


def check_matte(rgb: object, alpha: object, name: str = "alpha") -> tuple[int, int]:
    """Raise ValueError unless rgb is a photo and alpha its H×W float32 matte in [0, 1]."""
    shape = check_photo(rgb)
    check_array(name, alpha, np.float32, shape, unit_range=True)
    return shape
