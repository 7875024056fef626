"""The background behind the subject on the backend's arrays, premultiplied by its weight.

``workers.bokeh.behind`` on the array namespace (its docstring tells why): surely-background
pixels count fully, the subject not at all, and where the matte is partial and the fill from the
surely-background cells fails to explain the photo (a coherent misfit on a coarse grid), the
background behind is ``(I − α·F)/(1 − α)`` with weight ``1 − α``. Where the CPU reads the misfit
grid enlarged at the soft pixels only, here it is enlarged whole: cheap on a GPU, and the same
values.
"""

from __future__ import annotations

import math

import numpy as np

from workers.bokeh.behind import (
    _CHECK_CELL,
    _CHECK_SIDE,
    _CLEAR,
    _FAILS,
    _FITS,
    _TINY,
    SUBJECT_CUT,
)
from workers.gpu.backend import Array, Backend
from workers.gpu.colour import to_linear
from workers.gpu.filters import box_mean
from workers.gpu.layers import push_pull
from workers.gpu.resample import resize


def background_behind(
    backend: Backend, lin: Array, front: Array, alpha: Array, gain: Array
) -> tuple[Array, Array]:
    """The boosted background behind each pixel times its weight, and the weight (H×W×3, H×W).

    ``lin`` is the linear photo, ``front`` the subject's colour F (H×W×3 sRGB bytes), ``alpha``
    the matte and ``gain`` the highlight boost (H×W float32).
    """
    xp = backend.xp
    sure = xp.clip(1.0 - SUBJECT_CUT * alpha, 0.0, 1.0)
    colour = lin * (gain * sure)[..., None]
    misfit = _misfit(backend, lin, alpha)
    if misfit is None:
        return colour, sure
    h, w = alpha.shape
    soft = (alpha > 0) & (alpha < 1)
    t = resize(backend, misfit, (w, h), "linear") * soft
    a, s, share = alpha[..., None], sure[..., None], t[..., None]
    behind = xp.minimum(xp.maximum(lin - a * to_linear(backend, front), 0.0), 1.0 - a)
    kept = lin * s
    taken = t > 0
    colour = xp.where(taken[..., None], (kept + share * (behind - kept)) * gain[..., None], colour)
    sure = xp.where(taken, sure + t * (1.0 - alpha - sure), sure)
    return colour, sure


def _misfit(backend: Backend, lin: Array, alpha: Array) -> Array | None:
    """On a coarse grid: 0 where the fill from surely-background cells explains the photo, 1
    where it fails, by how many sRGB levels of it no subject colour explains; None where no cell
    is partly subject (nothing to check), or where the fill explains it all."""
    xp = backend.xp
    h, w = alpha.shape
    # whole cells (the last partial ones left out), as the CPU takes them
    cell = max(_CHECK_CELL, math.ceil(max(h, w) / _CHECK_SIDE))
    rows, cols = max(1, h // cell), max(1, w // cell)
    crop = slice(0, rows * cell), slice(0, cols * cell)
    a = resize(backend, alpha[crop], (cols, rows), "area")[..., None]
    if not bool(xp.any((a > 0) & (a < 1))):
        return None
    image = resize(backend, lin[crop], (cols, rows), "area")
    clear = (a <= _CLEAR).astype(xp.float32)  # cells of surely background only
    fill = push_pull(backend, xp.concatenate([image * clear, clear], axis=2))
    # soft edges mix in linear light (optics) or in sRGB (matting data sets, editors): either fits
    levels_image = _srgb(backend, image)
    in_linear = levels_image - _srgb(backend, image - _unexplained(backend, image, fill, a))
    in_srgb = 255.0 * _unexplained(backend, levels_image / 255.0, _srgb(backend, fill) / 255.0, a)
    levels = xp.minimum(xp.abs(in_linear).max(axis=2), xp.abs(in_srgb).max(axis=2))
    levels = box_mean(backend, levels, (3, 3), "reflect101")  # a few cells' misfit, not one's
    misfit = xp.clip((levels - _FITS) / (_FAILS - _FITS), 0.0, 1.0) * (a[..., 0] > 0)
    return misfit if bool(xp.any(misfit > 0)) else None


def _unexplained(backend: Backend, image: Array, fill: Array, a: Array) -> Array:
    """The part of the image no subject colour F in [0, 1] explains: I − (1−α)·B − α·F."""
    xp = backend.xp
    rest = image - (1.0 - a) * fill  # what the subject must explain: α·F
    return rest - a * xp.clip(rest / xp.maximum(a, _TINY), 0.0, 1.0)


def _srgb(backend: Backend, lin: Array) -> Array:
    """Linear light to sRGB levels 0..255, as float32 (clipped to [0, 1] first).

    The curve of ``workers.colour.linear_to_srgb``, in the backend's namespace.
    """
    xp = backend.xp
    v = xp.clip(lin, 0.0, 1.0)
    curve = xp.where(v <= 0.0031308, v * 12.92, 1.055 * xp.power(v, 1 / 2.4) - 0.055)
    return (255.0 * curve).astype(np.float32)
