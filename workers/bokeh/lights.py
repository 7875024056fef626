"""Point lights blurred at full detail on photos of any size.

Clipped lights arrive boosted (``workers.bokeh.highlights``) so that they blur into bright discs.
``workers.bokeh.background`` blurs the background on grids small enough to keep the cost flat; on a
big photo at low strength a cell of such a grid is several pixels wide, and so is the edge of every
disc. Only point lights show that edge: a light smaller than its disc draws the aperture's shape
with a rim, while blurred texture or a large bright area (a sky, a white wall, a sunlit sleeve) is
only smeared, and a coarser grid changes nothing visible there. Point lights are few, so they are
blurred apart, a few at a time in windows just large enough for their discs, at an integer
reduction that keeps the aperture's radius at least 8 px there, then added to the rest. Blur is
linear, so the sum is the same picture with sharp discs, at a cost that follows the lights' area,
not the photo's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import resize
from workers.bokeh.layers import position

KERNEL_RADIUS = 8.0  # smallest radius at which a rasterised disc or polygon keeps its shape
_GROUP = 64  # side of the squares whose lights are blurred together, in cells of the reduced grid
_LIGHT = 230  # first max-channel byte of a bright spot whose disc shows a rim
_LIGHTS_APART_MAX = 0.02  # share of the photo's pixels beyond which lights stay in the layers


class Lights(NamedTuple):
    """The point lights of a photo: where they are and their premultiplied linear colour."""

    shape: tuple[int, int]  # the photo's (height, width)
    ys: NDArray[np.intp]  # their pixels, row by row
    xs: NDArray[np.intp]
    colour: NDArray[np.float32]  # N x 3


def point_lights(lit: NDArray[np.uint8], largest: float) -> NDArray[np.uint8]:
    """Keep the lit blobs (8-connected) whose bounding box is at most ``largest`` pixels wide.

    ``lit`` (0 or 1) is changed in place and returned. Blobs are found on the mask halved (a
    2 x 2 block is lit if any of its pixels is), four times fewer pixels to label; blobs that
    nearly touch count as one, and sizes are read to within two pixels.
    """
    halved = np.ascontiguousarray(
        cv2.dilate(lit, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
    )
    _, labels, stats, _ = cv2.connectedComponentsWithStats(halved, connectivity=8)
    sides = 2 * np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    for i in np.nonzero(sides[1:] > largest)[0] + 1:  # label 0 is the unlit rest
        x, y, w, h = (int(v) for v in stats[i, :4])
        blob = (labels[y : y + h, x : x + w] == i).repeat(2, axis=0).repeat(2, axis=1)
        box = lit[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]
        box[blob[: box.shape[0], : box.shape[1]]] = 0
    return lit


def split_lights(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    gain: NDArray[np.float32],
    clear: NDArray[np.bool_],
    radii: list[float],
    max_scale: float,
) -> tuple[list[bool], Lights | None]:
    """Which layers leave their point lights to ``blur_highlights``, and those lights.

    ``lin`` is the H×W×3 linear photo, ``peak`` its H×W max channel (uint8), ``gain`` its
    highlight boost, ``clear`` where nothing covers the background (alpha = 0), ``radii`` the
    layers' blur radii and ``max_scale`` the largest scale a layer's grid may have. The layers
    whose grid is coarser than R/8, while the lights are few: a night sky full of them would make
    that path the slow one. Lights wider than the widest such disc are areas that draw no disc,
    and stay in the layers.
    """
    apart = [max_scale < 1.0 and KERNEL_RADIUS / r > max_scale for r in radii]
    if not any(apart):
        return apart, None
    widest = max(r for r, cut in zip(radii, apart, strict=True) if cut)
    lit = point_lights(((peak >= _LIGHT) & clear).view(np.uint8), 2 * widest)
    if not 0 < np.count_nonzero(lit) <= _LIGHTS_APART_MAX * lit.size:
        return [False] * len(radii), None
    lights = gather_lights(lit, lambda ys, xs: lin[ys, xs] * gain[ys, xs, None])
    return apart, lights


def gather_lights(lit: NDArray[np.uint8], colour: Callable[..., NDArray[np.float32]]) -> Lights:
    """Collect the marked pixels; ``colour(ys, xs)`` gives their N x 3 colours."""
    found = cv2.findNonZero(lit)
    points = np.empty((0, 2), np.intp) if found is None else found.reshape(-1, 2).astype(np.intp)
    xs, ys = points[:, 0], points[:, 1]
    return Lights((lit.shape[0], lit.shape[1]), ys, xs, colour(ys, xs))


def area_grid(lights: Lights, size: tuple[int, int]) -> NDArray[np.float32]:
    """The lights' image area-averaged to size (width, height), as ``cv2.INTER_AREA`` would.

    Computed from the light pixels alone: each adds its colour to the (at most 2 x 2) cells its
    square overlaps, in proportion to the overlap.
    """
    h, w = lights.shape
    rows = _area_weights(lights.ys, h, size[1])
    cols = _area_weights(lights.xs, w, size[0])
    colour = lights.colour
    grid = np.zeros((size[1] * size[0], 3), np.float64)
    for cell_y, weight_y in rows:
        for cell_x, weight_x in cols:
            np.add.at(grid, cell_y * size[0] + cell_x, (weight_y * weight_x)[:, None] * colour)
    return grid.reshape(size[1], size[0], 3).astype(np.float32)


def _area_weights(
    index: NDArray[np.intp], n_in: int, n_out: int
) -> list[tuple[NDArray[np.intp], NDArray[np.float64]]]:
    """Cells of a length-n_out axis that pixels ``index`` of a length-n_in axis fall in, weighted.

    Cell c covers [c * s, (c + 1) * s) with s = n_in / n_out; a pixel covers [i, i + 1). Returns
    (cell, weight) for the first cell and for the next one, which a pixel straddling a boundary
    also overlaps (weight 0 otherwise); each weight is the overlap divided by s.
    """
    scale = n_in / n_out
    first = np.minimum((index / scale).astype(np.intp), n_out - 1)
    boundary = (first + 1) * scale
    spill = np.clip(index + 1 - boundary, 0.0, 1.0)
    second = np.minimum(first + 1, n_out - 1)
    return [(first, (1.0 - spill) / scale), (second, spill / scale)]


class _Axis(NamedTuple):
    """Bilinear sampling along one axis: the input samples around each output position."""

    lo: NDArray[np.intp]
    hi: NDArray[np.intp]
    frac: NDArray[np.float32]  # weight of hi


class Enlarge:
    """Windows of grids enlarged bilinearly to a full size, without enlarging the rest.

    ``Enlarge(grid_shape, shape).window(grid, rows, cols)`` equals
    ``cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)[rows, cols]`` to float rounding.
    """

    def __init__(self, grid_shape: tuple[int, int], shape: tuple[int, int]) -> None:
        self._axes = [
            _linear_axis(n_in, n_out) for n_in, n_out in zip(grid_shape, shape, strict=True)
        ]

    def window(self, grid: NDArray[np.float32], rows: slice, cols: slice) -> NDArray[np.float32]:
        """The enlarged single-channel grid at rows and cols of the full size."""
        first_y, along_y = _linear_weights(self._axes[0], rows)
        first_x, along_x = _linear_weights(self._axes[1], cols)
        block = grid[first_y : first_y + along_y.shape[1], first_x : first_x + along_x.shape[1]]
        return np.asarray(along_y @ block @ along_x.T, np.float32)

    def at(
        self, grid: NDArray[np.float32], ys: NDArray[np.intp], xs: NDArray[np.intp]
    ) -> NDArray[np.float32]:
        """The enlarged single-channel grid at the pixels (ys, xs) of the full size."""
        (y0, y1, fy), (x0, x1, fx) = (
            (axis.lo[i], axis.hi[i], axis.frac[i])
            for axis, i in zip(self._axes, (ys, xs), strict=True)
        )
        top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
        bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
        return np.asarray(top * (1 - fy) + bottom * fy, np.float32)


def _linear_axis(n_in: int, n_out: int) -> _Axis:
    """For each of n_out positions: the input samples before and after it, and the fraction."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    return _Axis(lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32))


def _linear_weights(axis: _Axis, span: slice) -> tuple[int, NDArray[np.float32]]:
    """Interpolation matrix of the positions in span: first input index and weights."""
    lo, hi, frac = axis.lo[span], axis.hi[span], axis.frac[span]
    first = int(lo[0])
    weights = np.zeros((lo.size, int(hi[-1]) - first + 1), np.float32)
    at = np.arange(lo.size)
    weights[at, lo - first] = 1.0 - frac
    weights[at, hi - first] += frac  # hi = lo only at the end, where frac = 0
    return first, weights


def blur_highlights(
    into: NDArray[np.float32],
    cover: NDArray[np.float32],
    lights: Lights,
    radius: NDArray[np.float32],
    radii: list[float],
    layers: list[int],
    kernel: Callable[[float], NDArray[np.float32]],
) -> None:
    """Add the lights' blur, divided by cover, into the full-size linear image ``into``.

    ``cover`` is the background's weight conv(w, K), kept above zero, on a grid of any size
    (enlarged bilinearly), ``radius`` each light's blur radius, ``layers`` which of the layers of
    ``radii`` to render, and ``kernel(r)`` the normalised aperture of radius r. A light spreads
    into the two layers around its own radius (its disc's size is set by its own distance), in
    proportion to how near it is to each.
    """
    h, w = lights.shape
    enlarge = Enlarge(cover.shape[:2], (h, w))
    pos = position(radius, radii)
    for k in layers:
        share = np.clip(1.0 - np.abs(pos - k), 0.0, 1.0)
        here = np.flatnonzero(share)
        if here.size == 0:
            continue
        ys, xs = lights.ys[here], lights.xs[here]
        colour = lights.colour[here] * share[here, None]
        step = max(1, int(radii[k] // KERNEL_RADIUS))  # an integer, so every group's cells align
        aperture = kernel(radii[k] / step)
        # how far a light's blur spreads: the kernel's half width and a cell of bilinear tail
        reach = (aperture.shape[0] // 2 + 2) * step
        for group in _groups(ys, xs, _GROUP * step):
            gy, gx = ys[group], xs[group]
            span = slice(int(gy.min()), int(gy.max()) + 1), slice(int(gx.min()), int(gx.max()) + 1)
            window = _window(*span, reach, step, (h, w))
            rows, cols = window
            patch = np.zeros((rows.stop - rows.start, cols.stop - cols.start, 3), np.float32)
            patch[gy - rows.start, gx - cols.start] = colour[group]
            blurred = _blur_window(patch, aperture, step)
            into[rows, cols] += blurred / enlarge.window(cover, rows, cols)[..., None]


def _groups(ys: NDArray[np.intp], xs: NDArray[np.intp], side: int) -> list[NDArray[np.intp]]:
    """Indices of the lights (ys, xs), grouped by the square of this side they fall in."""
    cell = ys // side * (int(xs.max()) // side + 1) + xs // side
    order = np.argsort(cell, kind="stable")
    breaks = np.flatnonzero(np.diff(cell[order])) + 1
    return np.split(order, breaks)


def _window(
    rows: slice, cols: slice, reach: int, step: int, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """The span grown by reach on each side, starting on a multiple of step, within the image.

    Starting on a multiple of step keeps the reduced cells on one grid for every window.
    """
    y0 = max(0, rows.start - reach) // step * step
    x0 = max(0, cols.start - reach) // step * step
    return slice(y0, min(shape[0], rows.stop + reach)), slice(x0, min(shape[1], cols.stop + reach))


def _blur_window(
    colour: NDArray[np.float32], aperture: NDArray[np.float32], step: int
) -> NDArray[np.float32]:
    """Reduce by step (block mean), blur with the aperture, enlarge back bilinearly."""
    h, w = colour.shape[:2]
    if step > 1:  # zeros past the image's end: light from outside the frame is none
        colour = np.asarray(
            cv2.copyMakeBorder(colour, 0, -h % step, 0, -w % step, cv2.BORDER_CONSTANT), np.float32
        )
        colour = resize(colour, (colour.shape[1] // step, colour.shape[0] // step), cv2.INTER_AREA)
    blurred = cv2.filter2D(colour, -1, aperture, borderType=cv2.BORDER_CONSTANT)
    if step > 1:
        size = (blurred.shape[1] * step, blurred.shape[0] * step)
        blurred = cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)
    return np.asarray(blurred, np.float32)[:h, :w]
