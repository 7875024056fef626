"""The background behind the subject: what the blur starts from, premultiplied by its weight.

Where the matte is 0 the photo is the background; where it is 1 nothing of it shows. Where it is
partial, ``I = α·F + (1−α)·B`` says what is behind: ``(1−α)·B = I − α·F``, with F the subject's
estimated colour. Used with weight ``1 − α``, that B composites back to the photo, so a matte
that is wrong over a large area (a dark sweater given α = 0.4) does not repaint it: the blur
moves that background around but does not change its colour.

That estimate is only as good as F, and at a correct but wide soft edge the foreground
estimate lags (it averages nearby mixed pixels), which would carry subject colour into B and out
into a halo. There the background filled from surely-background pixels (weight ``1 − 4α``)
explains the photo: some valid F in [0, 1] gives ``I = α·F + (1−α)·B_fill``. So each pixel
takes the behind estimate in proportion to how badly the fill fails to explain the photo there,
measured on a coarse grid (local means, so that texture, which the blur removes anyway, does not
count; only a coherent misfit does), in sRGB levels: none up to ``_FITS``, fully from ``_FAILS``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import f32, resize
from workers.bokeh.enlarge import Enlarge
from workers.bokeh.layers import push_pull
from workers.colour import DECODE, linear_to_srgb

SUBJECT_CUT = 4.0  # alpha >= 1/4 is surely subject enough that its colour must stay out of B
_CHECK_SIDE = 256  # long side of the grid on which the fill's fit is checked ...
_CHECK_CELL = 8  # ... whose cells are at least this many pixels wide, to average texture out
_FITS, _FAILS = 4.0, 10.0  # misfit in sRGB levels: fill kept up to the first, replaced from the 2nd
_CLEAR = 1e-4  # a cell of the check grid with no more matte than this holds no subject colour
_TINY = np.float32(1e-6)


def background_behind(
    lin: NDArray[np.float32],
    front: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    gain: NDArray[np.float32],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The boosted background behind each pixel times its weight, and the weight (H×W×3, H×W).

    ``lin`` is the linear photo, ``front`` the subject's colour F (H×W×3 sRGB bytes), ``gain``
    the highlight boost.
    """
    sure = f32(np.clip(1.0 - SUBJECT_CUT * alpha, 0.0, 1.0))
    boost = cv2.multiply(gain, sure)
    colour = f32(cv2.multiply(lin, cv2.cvtColor(boost, cv2.COLOR_GRAY2RGB)))
    misfit = _misfit(lin, alpha)
    if not misfit.any():
        return colour, sure
    h, w = alpha.shape
    soft = np.flatnonzero((alpha > 0) & (alpha < 1))
    ys, xs = np.divmod(soft, w)
    t = Enlarge(misfit.shape, (h, w)).at(misfit, ys, xs)
    at, t = soft[t > 0], t[t > 0, None]
    a, s = alpha.reshape(-1)[at, None], sure.reshape(-1)[at, None]
    image = lin.reshape(-1, 3)[at]
    behind = np.clip(image - a * DECODE[front.reshape(-1, 3)[at]], 0.0, 1.0 - a)
    kept = image * s
    colour.reshape(-1, 3)[at] = (kept + t * (behind - kept)) * gain.reshape(-1)[at, None]
    sure.reshape(-1)[at] = (s + t * (1.0 - a - s))[:, 0]
    return colour, sure


def _misfit(lin: NDArray[np.float32], alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    """On a coarse grid: 0 where the fill from surely-background cells explains the photo, 1
    where it fails, by how many sRGB levels of it no subject colour explains."""
    h, w = alpha.shape
    # whole cells (the last partial ones left out): OpenCV's area resize is fastest by integers
    cell = max(_CHECK_CELL, math.ceil(max(h, w) / _CHECK_SIDE))
    rows, cols = max(1, h // cell), max(1, w // cell)
    crop = slice(0, rows * cell), slice(0, cols * cell)
    a = resize(alpha[crop], (cols, rows), cv2.INTER_AREA)[..., None]
    if not np.any((a > 0) & (a < 1)):
        return np.zeros(a.shape[:2], np.float32)
    image = resize(lin[crop], (cols, rows), cv2.INTER_AREA)
    clear = f32(a[..., 0] <= _CLEAR)  # cells of surely background only
    fill = push_pull(np.dstack([image * clear[..., None], clear]))
    # soft edges mix in linear light (optics) or in sRGB (matting data sets, editors): either fits
    in_linear = _srgb(image) - _srgb(image - _unexplained(image, fill, a))
    in_srgb = 255.0 * _unexplained(_srgb(image) / 255.0, _srgb(fill) / 255.0, a)
    levels = np.minimum(np.abs(in_linear).max(axis=2), np.abs(in_srgb).max(axis=2))
    levels = f32(cv2.blur(levels, (3, 3)))  # a misfit of a few cells together, not one cell's
    return f32(np.clip((levels - _FITS) / (_FAILS - _FITS), 0.0, 1.0) * (a[..., 0] > 0))


def _unexplained(
    image: NDArray[np.float32], fill: NDArray[np.float32], a: NDArray[np.float32]
) -> NDArray[np.float32]:
    """The part of the image no subject colour F in [0, 1] explains: I − (1−α)·B − α·F."""
    rest = image - (1.0 - a) * fill  # what the subject must explain: α·F
    return f32(rest - a * np.clip(rest / np.maximum(a, _TINY), 0.0, 1.0))


def _srgb(lin: NDArray[np.float32]) -> NDArray[np.float32]:
    """Linear light to sRGB levels 0..255, as floats (clipped to [0, 1] first)."""
    return f32(255.0 * linear_to_srgb(np.clip(lin, 0.0, 1.0)))
