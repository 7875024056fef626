"""Resizing as OpenCV does it, and lookup tables, on the backend's arrays.

``resize`` gives what ``cv2.resize`` gives with ``INTER_AREA`` (shrinking: each output pixel the
mean of the input area it covers, partial pixels in proportion) and ``INTER_LINEAR`` (half-pixel
centres, the edge pixel repeated), to float rounding: both are separable, and each axis is a
weighted sum of a few input rows or columns (taps) gathered with ``take``, so the same code runs
on NumPy and CuPy. Sizes are ``(width, height)``, as in ``workers.arrays``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workers.gpu.backend import Array, Backend

_AREA_EPS = 1e-3  # OpenCV drops partial-pixel area weights smaller than this


def resize(
    backend: Backend, image: Array, size: tuple[int, int], interpolation: str | None = None
) -> Array:
    """Resize an H×W or H×W×C array to size = (width, height); the same array at that size.

    ``interpolation`` is ``"area"`` (shrinking only) or ``"linear"``; without one, area when
    shrinking and linear when enlarging, like ``workers.arrays.resize``. Floats stay float32;
    integer images are rounded back to their type.
    """
    width, height = size
    if (image.shape[1], image.shape[0]) == size:
        return image
    if interpolation is None:
        shrinking = width <= image.shape[1] and height <= image.shape[0]
        interpolation = "area" if shrinking else "linear"
    out = image.astype(np.float32, copy=False)
    for axis, n_out in ((0, height), (1, width)):
        if out.shape[axis] != n_out:
            out = _along(
                backend, out, axis, _device_taps(backend, out.shape[axis], n_out, interpolation)
            )
    if image.dtype == np.float32:
        return out
    limits = np.iinfo(image.dtype)
    return backend.xp.clip(backend.xp.rint(out), limits.min, limits.max).astype(image.dtype)


def lut(backend: Backend, table: NDArray[Any], index: Array) -> Array:
    """``table[index]`` on the backend (``cv2.LUT``), the table copied to the device once."""
    return backend.xp.take(_device_table(backend, table.tobytes(), table.dtype.str), index)


def _along(backend: Backend, image: Array, axis: int, taps: tuple[Array, Array]) -> Array:
    """Each output line along ``axis``: the weighted sum of the input lines its taps name."""
    index, weight = taps
    shape = [1] * image.ndim
    shape[axis] = index.shape[0]
    out = None
    for k in range(index.shape[1]):
        term = backend.xp.take(image, index[:, k], axis=axis) * weight[:, k].reshape(shape)
        out = term if out is None else out + term
    return out


@functools.lru_cache(maxsize=64)
def _device_taps(backend: Backend, n_in: int, n_out: int, kind: str) -> tuple[Array, Array]:
    """The taps of one axis on the backend, cached by size."""
    index, weight = area_taps(n_in, n_out) if kind == "area" else linear_taps(n_in, n_out)
    return backend.asarray(index), backend.asarray(weight)


@functools.lru_cache(maxsize=16)
def _device_table(backend: Backend, data: bytes, dtype: str) -> Array:
    """A lookup table on the backend, cached by content."""
    return backend.asarray(np.frombuffer(data, np.dtype(dtype)))


def linear_taps(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Bilinear sampling of n_out positions over n_in: two input indices and weights each."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    frac = (src - lo).astype(np.float32)
    index = np.stack([lo, np.minimum(lo + 1, n_in - 1)], axis=1)
    return index, np.stack([1.0 - frac, frac], axis=1).astype(np.float32)


def area_taps(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Area averaging of n_in samples onto n_out <= n_in cells: indices and weights each.

    Cell c covers [c·s, (c+1)·s) with s = n_in / n_out; each input pixel it overlaps counts by the
    overlap over the cell's width (the last cell's width is what is left of the input).
    """
    if n_out > n_in:
        raise ValueError(f"area resampling shrinks only, got {n_in} -> {n_out}")
    scale = n_in / n_out
    count = math.ceil(scale) + 1
    start = np.arange(n_out) * scale
    first = np.floor(start).astype(np.intp)
    index = first[:, None] + np.arange(count)
    overlap = np.minimum(index + 1, start[:, None] + scale) - np.maximum(index, start[:, None])
    overlap = np.where((overlap < _AREA_EPS) | (index >= n_in), 0.0, overlap)
    weight = overlap / np.minimum(scale, n_in - start)[:, None]
    return np.minimum(index, n_in - 1), weight.astype(np.float32)
