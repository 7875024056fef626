"""Resizing as OpenCV does it, and lookup tables, on the backend's arrays.

``resize`` gives what ``cv2.resize`` gives with ``INTER_AREA`` (shrinking: each output pixel the
mean of the input area it covers, partial pixels in proportion) and ``INTER_LINEAR`` (half-pixel
centres, the edge pixel repeated), to float rounding: both are separable, and each axis is a
weighted sum of a few input rows or columns (taps) gathered with ``take``, so the same code runs
on NumPy and CuPy. Byte images come out byte for byte as OpenCV rounds them (``_bytes``).
``sample_grid`` samples bilinearly at any points, as ``cv2.remap`` does. Sizes are
``(width, height)``, as in ``workers.arrays``.
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
    uint8 images get OpenCV's bytes; other integer images are rounded back to their type.
    """
    width, height = size
    if (image.shape[1], image.shape[0]) == size:
        return image
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    if interpolation is None:
        interpolation = "area" if shrinking else "linear"
    if image.dtype == np.uint8:
        if interpolation == "linear" or not shrinking:
            return _bytes_linear(backend, image, size)
        return _bytes_area(backend, image, size)
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


def sample_grid(
    backend: Backend, image: Array, rows: NDArray[np.floating[Any]], cols: NDArray[np.floating[Any]]
) -> Array:
    """Bilinear samples of an h×w(×C) image at every (row, column) pair: len(rows)×len(cols)(×C)."""
    out = image
    for axis, points in ((0, rows), (1, cols)):
        index, weight = sample_taps(points, image.shape[axis])
        out = _along(backend, out, axis, (backend.asarray(index), backend.asarray(weight)))
    return out


def linear_taps(n_in: int, n_out: int) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Bilinear sampling of n_out positions over n_in: two input indices and weights each."""
    return sample_taps((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, n_in)


def sample_taps(
    coords: NDArray[np.floating[Any]], n_in: int
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Bilinear taps (two indices and weights per point) of points along an axis of n_in samples.

    Points beyond the first or last sample take its value, as ``cv2.remap``'s replicated border.
    """
    src = np.clip(coords, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    frac = src - lo
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


def _bytes_area(backend: Backend, image: Array, size: tuple[int, int]) -> Array:
    """``cv2.resize`` with INTER_AREA of a uint8 image, shrinking, byte for byte.

    OpenCV rounds its byte results in ways of its own, which the float mean rounded to nearest
    misses on up to one pixel in eight: shrinking by whole factors takes each block's integer sum
    times the reciprocal of its area in float32 (a halving: the sum of 4 plus 2, shifted right by
    2); other area averaging runs along x first, then along y.
    """
    xp = backend.xp
    width, height = size
    src_h, src_w = image.shape[:2]
    colour = image.astype(xp.float32)
    if src_w % width or src_h % height:
        along_rows = resize(backend, colour, (width, src_h), "area")
        mean = resize(backend, along_rows, size, "area")
        return xp.clip(xp.rint(mean), 0, 255).astype(xp.uint8)
    area = (src_w // width) * (src_h // height)
    # the float mean is within far less than 1/area of the exact one: rint recovers the sum
    sums = xp.rint(resize(backend, colour, size, "area") * np.float32(area))
    if (src_w, src_h) == (2 * width, 2 * height):
        return ((sums + 2.0) // 4.0).astype(xp.uint8)
    return xp.rint(sums * (np.float32(1.0) / np.float32(area))).astype(xp.uint8)


def _bytes_linear(backend: Backend, image: Array, size: tuple[int, int]) -> Array:
    """``cv2.resize`` with INTER_LINEAR of a uint8 image, as OpenCV's vectorised code computes it.

    Weights are in 1/2048ths: each row is interpolated along x first, exactly in integers; the
    rows are then mixed along y with the products' low bits dropped (a high-half multiply), and
    the sum rounded. Above the first row and below the last, the edge row stands in for the
    missing one but keeps its weight, which the dropped bits make count.
    """
    xp = backend.xp
    trailing = (1,) * (image.ndim - 2)  # the channels, if any
    index, weight = _fixed_point_taps(image.shape[1], size[0], clamp=True)
    along_x = backend.asarray(weight).reshape(weight.shape[0], 2, *trailing)
    rows = sum(
        xp.take(image, backend.asarray(index[:, k]), axis=1).astype(xp.int32) * along_x[:, k]
        for k in (0, 1)
    )
    index, weight = _fixed_point_taps(image.shape[0], size[1], clamp=False)
    out = xp.full(rows.shape[1:], 2, xp.int32)[None]
    for k in (0, 1):
        line = xp.take(rows, backend.asarray(index[:, k]), axis=0) >> 4
        along_y = backend.asarray(weight[:, k]).reshape(-1, 1, *trailing)
        out = out + ((line * along_y) >> 16)
    return xp.clip(out >> 2, 0, 255).astype(xp.uint8)


def _fixed_point_taps(
    n_in: int, n_out: int, *, clamp: bool
) -> tuple[NDArray[np.intp], NDArray[np.int32]]:
    """OpenCV's bilinear taps of one axis for bytes: indices, and weights in 1/2048ths.

    ``clamp`` moves a point beyond the first or last sample onto it with all the weight (OpenCV
    does so along rows); without it the index is clamped but the weights are kept.
    """
    src = ((np.arange(n_out) + 0.5) * (1.0 / (n_out / n_in)) - 0.5).astype(np.float32)
    lo = np.floor(src).astype(np.intp)
    frac = (src - lo).astype(np.float32)
    if clamp:
        beyond = (lo < 0) | (lo >= n_in - 1)
        frac = np.where(beyond, np.float32(0.0), frac)
        lo = np.clip(lo, 0, n_in - 1)
    index = np.stack([np.clip(lo, 0, n_in - 1), np.clip(lo + 1, 0, n_in - 1)], axis=1)
    weight = np.stack([np.float32(1.0) - frac, frac], axis=1) * np.float32(2048.0)
    return index, np.rint(weight).astype(np.int32)
