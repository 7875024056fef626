"""Edge-aware upsampling on the backend's arrays: ``workers.matting.upsample`` for NumPy and CuPy.

The same colour guided filter, fitted at the matte's resolution with the photo shrunk to it as the
guide, its coefficients sampled bilinearly at full resolution and applied in the uncertain band;
its constants, its 3×3 solve (``workers.matting.covariance``) and its per-pixel model are the
OpenCV version's own. Two things differ in how, not what: the model is evaluated over the whole
photo and the band picked with ``where`` (a GPU gains nothing from gathering the band's pixels
first), and the bilinear samples are separable taps, as ``cv2.remap`` with float maps and a
replicated edge gives them. The result equals the OpenCV version's to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_photo
from workers.gpu.backend import Array, Backend
from workers.gpu.resample import _along, resize
from workers.matting import covariance
from workers.matting.upsample import _CONFIDENT, _EPS, _RADIUS, _linear


def refine_upsample(backend: Backend, alpha_lowres: Array, rgb: Array) -> Array:
    """Resize a low-resolution alpha to rgb's H×W, following rgb's edges where alpha is unsure.

    ``alpha_lowres`` is any non-empty 2-D float array and ``rgb`` an H×W×3 uint8 photo, on the host
    or the backend; the result is H×W float32 in [0, 1] on the backend.
    """
    xp = backend.xp
    rgb, lowres = backend.asarray(rgb), backend.asarray(alpha_lowres)
    height, width = check_photo(rgb)
    if lowres.ndim != 2 or lowres.size == 0:
        raise ValueError(f"alpha must be a non-empty 2-D array, got shape {lowres.shape}")
    lowres = xp.clip(lowres.astype(xp.float32), 0.0, 1.0)
    guide = (
        resize_photo(backend, rgb, (lowres.shape[1], lowres.shape[0])).astype(xp.float32) / 255.0
    )
    coefficients = _guided_coefficients(backend, guide, lowres)
    band = _uncertain_band(backend, lowres, 2 * _RADIUS)
    coarse = resize(backend, lowres, (width, height))
    return xp.clip(_apply_at_full_resolution(backend, coefficients, band, coarse, rgb), 0.0, 1.0)


def resize_photo(backend: Backend, rgb: Array, size: tuple[int, int]) -> Array:
    """``workers.arrays.resize`` of an H×W×C uint8 image to size = (width, height), byte for byte.

    OpenCV rounds its byte results in ways of its own, which ``workers.gpu.resample.resize``'s
    float result rounded to nearest misses on up to one pixel in eight: bilinear resizing is
    fixed-point arithmetic (``_bytes_linear``); shrinking by whole factors takes each block's
    integer sum times the reciprocal of its area in float32 (a halving: the sum of 4 plus 2,
    shifted right by 2); other area averaging runs along x first, then along y.
    """
    xp = backend.xp
    width, height = size
    src_h, src_w = rgb.shape[:2]
    if (src_w, src_h) == size:
        return rgb
    if width > src_w or height > src_h:
        return _bytes_linear(backend, rgb, size)
    colour = rgb.astype(xp.float32)
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


def sample_taps(
    coords: NDArray[np.floating[Any]], n_in: int
) -> tuple[NDArray[np.intp], NDArray[Any]]:
    """Bilinear taps (two indices and weights per point) of points along an axis of n_in samples.

    Points beyond the first or last sample take its value, as ``cv2.remap``'s replicated border.
    """
    src = np.clip(coords, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    frac = src - lo
    index = np.stack([lo, np.minimum(lo + 1, n_in - 1)], axis=1)
    return index, np.stack([1.0 - frac, frac], axis=1).astype(np.float32)


def sample_grid(
    backend: Backend, image: Array, rows: NDArray[np.floating[Any]], cols: NDArray[np.floating[Any]]
) -> Array:
    """Bilinear samples of an h×w(×C) image at every (row, column) pair: len(rows)×len(cols)(×C)."""
    out = image
    for axis, points in ((0, rows), (1, cols)):
        index, weight = sample_taps(points, image.shape[axis])
        out = _along(backend, out, axis, (backend.asarray(index), backend.asarray(weight)))
    return out


def _bytes_linear(backend: Backend, rgb: Array, size: tuple[int, int]) -> Array:
    """``cv2.resize`` with INTER_LINEAR of a uint8 image, as OpenCV's vectorised code computes it.

    Weights are in 1/2048ths: each row is interpolated along x first, exactly in integers; the
    rows are then mixed along y with the products' low bits dropped (a high-half multiply), and
    the sum rounded. Above the first row and below the last, the edge row stands in for the
    missing one but keeps its weight, which the dropped bits make count.
    """
    xp = backend.xp
    index, weight = _fixed_point_taps(rgb.shape[1], size[0], clamp=True)
    pair = [xp.take(rgb, backend.asarray(index[:, k]), axis=1).astype(xp.int32) for k in (0, 1)]
    weight_d = backend.asarray(weight)[:, :, None]
    rows = pair[0] * weight_d[:, 0] + pair[1] * weight_d[:, 1]
    index, weight = _fixed_point_taps(rgb.shape[0], size[1], clamp=False)
    out = xp.full(rows.shape[1:], 2, xp.int32)[None]
    for k in (0, 1):
        line = xp.take(rows, backend.asarray(index[:, k]), axis=0) >> 4
        out = out + ((line * backend.asarray(weight[:, k])[:, None, None]) >> 16)
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


def _apply_at_full_resolution(
    backend: Backend, coefficients: Array, band: Array, coarse: Array, rgb: Array
) -> Array:
    """The upsampled linear model a·I + b where the band is, the coarse alpha elsewhere."""
    xp = backend.xp
    height, width = coarse.shape
    work_h, work_w = band.shape
    rows, cols = _nearest(work_h, height), _nearest(work_w, width)
    band_full = xp.take(xp.take(band, backend.asarray(rows), axis=0), backend.asarray(cols), axis=1)
    # Pixel centres in working coordinates, in float32 as the OpenCV version computes them.
    map_x = (np.arange(width, dtype=np.float32) + 0.5) * np.float32(work_w / width) - 0.5
    map_y = (np.arange(height, dtype=np.float32) + 0.5) * np.float32(work_h / height) - 0.5
    sampled = sample_grid(backend, coefficients, map_y, map_x)
    model = _linear(sampled.reshape(-1, 4), rgb.reshape(-1, 3)).reshape(height, width)
    return xp.where(band_full, model, coarse)


def _nearest(n_in: int, n_out: int) -> NDArray[np.intp]:
    """The source index of each of n_out samples in ``cv2.resize``'s INTER_NEAREST of n_in."""
    step = 1.0 / (n_out / n_in)  # OpenCV's inverse scale, rounded as it rounds it
    index: NDArray[np.intp] = np.floor(np.arange(n_out) * step).astype(np.intp)
    return np.minimum(index, n_in - 1)


def _guided_coefficients(backend: Backend, guide: Array, target: Array) -> Array:
    """Mean coefficients (a_r, a_g, a_b, b) of the colour guided filter, H×W×4."""

    def mean(x: Array) -> Array:
        return _window_mean(backend, x, _RADIUS)

    planes = [backend.xp.ascontiguousarray(guide[..., c]) for c in range(3)]
    fit = covariance.linear_fit(planes, target, mean, _EPS)
    return mean(backend.xp.stack(fit, axis=-1))


def _window_mean(backend: Backend, image: Array, radius: int) -> Array:
    """``cv2.boxFilter`` (BORDER_REFLECT) of an H×W(×C) float32 array over (2r+1)² windows.

    Summed in float64 and rounded to float32 once, as OpenCV does: the filter's covariances are
    small differences of these means, and ``box_mean``'s float32 rounding between its passes
    moves its coefficients by up to a few percent where the photo is flat.
    """
    xp = backend.xp
    total = image.astype(xp.float64)
    for axis in (0, 1):
        n = total.shape[axis]
        reflected = backend.asarray(np.pad(np.arange(n), radius, mode="symmetric"))
        padded = xp.take(total, reflected, axis=axis)
        total = sum(xp.take(padded, xp.arange(k, k + n), axis=axis) for k in range(2 * radius + 1))
    return (total * (1.0 / (2 * radius + 1) ** 2)).astype(xp.float32)


def _uncertain_band(backend: Backend, alpha: Array, reach: int) -> Array:
    """Pixels whose alpha is neither ≈0 nor ≈1, grown by reach pixels (a square's dilation)."""
    low, high = _CONFIDENT
    unsure = ((alpha > low) & (alpha < high)).astype(backend.xp.uint8)
    # zeros beyond the edge: cv2.dilate's default border never grows the band from outside
    grown = backend.ndimage.maximum_filter(unsure, size=2 * reach + 1, mode="constant", cval=0)
    return grown > 0
