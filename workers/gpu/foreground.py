"""Foreground colour estimation on the backend's arrays: ``workers.matting.foreground`` for NumPy
and CuPy.

The same blur fusion (Forte & Pitié, ICIP 2021, with the weights α⁴ and (1−α)⁴), its two passes
on the same grid of means and its constants; the last update at full resolution is computed for
every pixel and kept on the soft ones with ``where`` (on a GPU that costs less than gathering the
soft pixels first), the grid's means sampled bilinearly as the OpenCV version samples them. Colours
are linear light; the result equals the OpenCV version's to float rounding, a level at most.
"""

from __future__ import annotations

import numpy as np

from workers.arrays import check_photo
from workers.gpu.backend import Array, Backend
from workers.gpu.colour import to_linear, to_srgb
from workers.gpu.filters import box_mean
from workers.gpu.resample import resize, sample_grid
from workers.matting.foreground import (
    _EPS,
    _LARGE_RADIUS,
    _REFERENCE_SIDE,
    _SMALL_RADIUS,
    _SOLID_HIGH,
    _SOLID_LOW,
    _grid_step,
)


def estimate_foreground(backend: Backend, rgb: Array, alpha: Array) -> Array:
    """Foreground colours under a matte, so that soft edges lose the old background's colour.

    ``rgb`` is an H×W×3 uint8 photo and ``alpha`` its H×W float32 matte in [0, 1], on the host or
    the backend; the result is H×W×3 uint8 on the backend.
    """
    xp = backend.xp
    rgb, alpha = backend.asarray(rgb), backend.asarray(alpha)
    shape = check_photo(rgb)
    if alpha.dtype != np.float32 or alpha.shape != shape:
        raise ValueError(f"alpha must be a float32 array of shape {shape}, got {alpha.dtype}")
    if not bool(((alpha >= 0.0) & (alpha <= 1.0)).all()):  # NaN fails this too
        raise ValueError("alpha must lie in [0, 1]")
    soft = (alpha > _SOLID_LOW) & (alpha < _SOLID_HIGH)
    if not bool(soft.any()):
        return rgb.copy()
    image = to_linear(backend, rgb)
    step = _grid_step(shape)
    f_hat, b_hat = _local_means(backend, image, alpha, step)
    # grid cell j covers pixels j·step .. (j+1)·step − 1: its centre is at (j + 0.5)·step − 0.5
    rows = (np.arange(shape[0], dtype=np.float32) + 0.5) / np.float32(step) - 0.5
    cols = (np.arange(shape[1], dtype=np.float32) + 0.5) / np.float32(step) - 0.5
    means = sample_grid(backend, xp.concatenate([f_hat, b_hat], axis=2), rows, cols)
    a = alpha[..., None]
    front = to_srgb(backend, _corrected(backend, image, a, means[..., :3], means[..., 3:]))
    return xp.where(soft[..., None], front, rgb)


def _local_means(backend: Backend, image: Array, alpha: Array, step: int) -> tuple[Array, Array]:
    """The two passes on the grid of step×step cells, up to the second's means F̂ and B̂."""
    h, w = alpha.shape[0] // step, alpha.shape[1] // step
    # a last partial row or column of cells is left out, as the OpenCV version leaves it
    grid = resize(backend, image[: h * step, : w * step], (w, h), "area")
    a = resize(backend, alpha[: h * step, : w * step], (w, h), "area")[..., None]
    weights = (a * a) ** 2, ((1.0 - a) * (1.0 - a)) ** 2  # α⁴ and (1−α)⁴
    scale = max(h, w) / _REFERENCE_SIDE
    f_hat, b_hat = _blurred_means(backend, grid, grid, weights, _LARGE_RADIUS * scale)
    first = _corrected(backend, grid, a, f_hat, b_hat)
    return _blurred_means(backend, first, b_hat, weights, _SMALL_RADIUS * scale)


def _blurred_means(
    backend: Backend, front: Array, back: Array, weights: tuple[Array, Array], radius: float
) -> tuple[Array, Array]:
    """F̂ = blur(F·w) / blur(w) and B̂ = blur(B·v) / blur(v), with a box of this radius."""
    r = max(1, round(radius))
    box = (2 * r + 1, 2 * r + 1)
    eps = np.float32(_EPS)
    w, v = weights
    f_hat = box_mean(backend, front * w, box, "reflect101") / (
        box_mean(backend, w, box, "reflect101") + eps
    )
    b_hat = box_mean(backend, back * v, box, "reflect101") / (
        box_mean(backend, v, box, "reflect101") + eps
    )
    return f_hat, b_hat


def _corrected(backend: Backend, image: Array, a: Array, f_hat: Array, b_hat: Array) -> Array:
    """F = F̂ + α·(I − α·F̂ − (1−α)·B̂), clipped to the valid range (the paper's update)."""
    residual = image - a * f_hat - (1.0 - a) * b_hat
    return backend.xp.clip(f_hat + a * residual, 0.0, 1.0)
