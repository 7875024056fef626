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

import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_photo
from workers.gpu.backend import Array, Backend
from workers.gpu.resample import resize, sample_grid
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
    guide = resize(backend, rgb, (lowres.shape[1], lowres.shape[0])).astype(xp.float32) / 255.0
    coefficients = _guided_coefficients(backend, guide, lowres)
    band = _uncertain_band(backend, lowres, 2 * _RADIUS)
    coarse = resize(backend, lowres, (width, height))
    return xp.clip(_apply_at_full_resolution(backend, coefficients, band, coarse, rgb), 0.0, 1.0)


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
