"""Foreground colour estimation: the subject's own colours where its matte is soft.

Where hair or fur is semi-transparent the photo mixes the subject's colour F with the old
background's colour B, ``I = α·F + (1−α)·B``. Compositing ``I`` itself over a new background
keeps a fringe of the old one, so this stage estimates ``F`` for the compositor.

Method: blur fusion, Forte & Pitié, "Approximate Fast Foreground Colour Estimation", ICIP 2021.
Box filters give local means of the subject and of the background, ``F̂ = blur(F·w) / blur(w)``
and ``B̂ = blur(B·v) / blur(v)``, and ``F̂`` is corrected by the part of ``I`` that they leave
unexplained, ``F = F̂ + α·(I − α·F̂ − (1−α)·B̂)``. As in the paper this runs twice: with a large
box from ``F = B = I``, then with a small box from the first pass's ``F`` and ``B̂``; the paper's
90 and 6 px boxes apply at a 1000 px long side and scale with it. One change: the paper weights
by ``w = α`` and ``v = 1−α``; here ``w = α⁴`` and ``v = (1−α)⁴``, so that nearly pure pixels
dominate the means and mixed ones bring less of the old background into ``F̂``. On mattes of
real hair and fur (alphamatting.com) composited over photos, that lowered the error of ``F`` by
about 30% more.

Colours are linear light, not the stored sRGB values the paper used: light mixes linearly at a
soft edge, and ``render_bokeh`` composites in linear light, so this is the ``F`` it needs.

Cost: the means are smooth, and a matte has no finer detail than the model that made it, so
they are computed on a grid of at most ``_GRID_SIDE`` px. The last update, which brings back
the photo's own detail, runs at full resolution on the soft pixels only (``_SOLID_LOW < α <
_SOLID_HIGH``); every other pixel keeps its bytes. The output is deterministic.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_matte, f32, resize
from workers.colour import DECODE, to_srgb
from workers.matting.upsample import sample

_SOLID_LOW = 0.01  # at or below: background, where F is invisible, so the bytes stay
_SOLID_HIGH = 0.99  # at or above: solid subject, whose photo pixels already are F
_REFERENCE_SIDE = 1000.0  # long side at which the paper's box sizes apply
_LARGE_RADIUS = 45.0  # the paper's 90 px box, at _REFERENCE_SIDE
_SMALL_RADIUS = 3.0  # the paper's 6 px box, at _REFERENCE_SIDE
_GRID_SIDE = 1024  # longest side of the grid of means: about a matting model's own resolution
_CHUNK = 16384  # soft pixels per step: their samples of the means fit the cache
_EPS = 1e-5  # keeps an empty weight from dividing by zero, as in the paper
_PIXEL = np.dtype("V3")  # an RGB pixel as one item: scattering items is 3× faster than rows

# subject then background: the means (F̂, B̂) or the weights (w, v) that they are taken with
Pair = tuple[NDArray[np.float32], NDArray[np.float32]]


def estimate_foreground(rgb: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Foreground colours under a matte, so that soft edges lose the old background's colour."""
    check_matte(rgb, alpha)
    rgb, alpha = np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)  # flat views need these
    out = rgb.copy()
    soft = np.flatnonzero((alpha > _SOLID_LOW) & (alpha < _SOLID_HIGH))
    if soft.size == 0:
        return out
    means = _local_means(rgb, alpha)
    pixels = out.view(_PIXEL).reshape(-1)
    for start in range(0, soft.size, _CHUNK):
        chunk = soft[start : start + _CHUNK]
        np.put(pixels, chunk, _refined(rgb, alpha, means, chunk).view(_PIXEL))
    return out


def _local_means(rgb: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    """The two passes on the grid, up to the second's means: F̂ and B̂ as 6 channels."""
    step = _grid_step(alpha.shape)
    image, a = _grid_image(rgb, step), _grid_alpha(alpha, step)
    a = f32(cv2.merge([a, a, a]))  # three equal channels: no broadcasting below
    weights = f32(a * a) ** 2, f32((1.0 - a) * (1.0 - a)) ** 2  # α⁴ and (1−α)⁴
    scale = max(a.shape[:2]) / _REFERENCE_SIDE
    f_hat, b_hat = _blurred_means(image, image, weights, _LARGE_RADIUS * scale)
    first = _corrected(image, a, f_hat, b_hat)
    return np.dstack(_blurred_means(first, b_hat, weights, _SMALL_RADIUS * scale))


def _grid_step(shape: tuple[int, ...]) -> int:
    """Pixels per grid cell along each axis: whole, so that cells tile the photo, at least 1."""
    # no more than the short side, so that even a 1-px-wide strip has a grid row
    return max(1, min(math.ceil(max(shape) / _GRID_SIDE), *shape))


def _grid_image(rgb: NDArray[np.uint8], step: int) -> NDArray[np.float32]:
    """Linear light averaged over step×step cells; a last partial row or column is left out."""
    h, w = rgb.shape[0] // step, rgb.shape[1] // step
    image = np.empty((h, w, 3), np.float32)
    rows = 64  # grid rows per strip: decoding a whole 12 MP photo to float at once is slower
    for top in range(0, h, rows):
        strip = cv2.LUT(rgb[top * step : (top + rows) * step, : w * step], DECODE)
        image[top : top + rows] = resize(f32(strip), (w, strip.shape[0] // step), cv2.INTER_AREA)
    return image


def _grid_alpha(alpha: NDArray[np.float32], step: int) -> NDArray[np.float32]:
    """Alpha averaged over the same cells as _grid_image."""
    h, w = alpha.shape[0] // step, alpha.shape[1] // step
    return resize(alpha[: h * step, : w * step], (w, h), cv2.INTER_AREA)


def _blurred_means(
    front: NDArray[np.float32], back: NDArray[np.float32], weights: Pair, radius: float
) -> Pair:
    """F̂ = blur(F·w) / blur(w) and B̂ = blur(B·v) / blur(v), with a box of this radius."""
    r = max(1, round(radius))
    box = (2 * r + 1, 2 * r + 1)
    w, v = weights
    f_hat = f32(cv2.blur(front * w, box)) / (f32(cv2.blur(w, box)) + np.float32(_EPS))
    b_hat = f32(cv2.blur(back * v, box)) / (f32(cv2.blur(v, box)) + np.float32(_EPS))
    return f_hat, b_hat


def _corrected(
    image: NDArray[np.float32],
    a: NDArray[np.float32],
    f_hat: NDArray[np.float32],
    b_hat: NDArray[np.float32],
) -> NDArray[np.float32]:
    """F = F̂ + α·(I − α·F̂ − (1−α)·B̂), clipped to the valid range (the paper's update)."""
    residual = image - a * f_hat - (1.0 - a) * b_hat
    return f32(np.clip(f_hat + a * residual, 0.0, 1.0))


def _refined(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    means: NDArray[np.float32],
    pixels: NDArray[np.intp],
) -> NDArray[np.uint8]:
    """The paper's last update at full resolution on these pixels (flat indices), N×3 sRGB."""
    f_hat, b_hat = np.split(_sample(means, pixels, alpha.shape), 2, axis=1)
    image = f32(cv2.LUT(np.take(rgb.reshape(-1, 3), pixels, axis=0)[None], DECODE))[0]
    a = np.take(alpha, pixels)[:, None]
    return to_srgb(_corrected(image, a, f_hat, b_hat))


def _sample(
    grid: NDArray[np.float32], pixels: NDArray[np.intp], shape: tuple[int, ...]
) -> NDArray[np.float32]:
    """Bilinear samples of a grid image at full-resolution pixels (flat indices), N×channels."""
    step = np.float32(_grid_step(shape))
    y, x = np.divmod(pixels, shape[1])
    # cell j covers pixels j*step .. (j+1)*step - 1: its centre is at pixel (j + 0.5)*step - 0.5
    map_x = (x.astype(np.float32) + 0.5) / step - 0.5
    map_y = (y.astype(np.float32) + 0.5) / step - 0.5
    return sample(grid, map_x, map_y)
