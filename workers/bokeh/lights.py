"""Point lights: the bright spots smaller than their disc, found and taken out of the layers.

Clipped lights arrive boosted (``workers.bokeh.highlights``) so that they blur into bright discs.
A lens draws each point light as one disc: the aperture's shape at the light's own blur radius,
with a rim as sharp as the light is small. The layers of ``workers.bokeh.background`` cannot: a
light between two layer radii would come out as two discs of those radii mixed, and the layers'
grids, a cell of which spans R/8 pixels or more, would spread its rim over a cell. So, while they
are few, the point lights are taken out of every layer (subtracted from its grid exactly) and
each is drawn once at full resolution by ``workers.bokeh.discs``. Blurred texture and large bright
areas (a sky, a white wall, a sunlit sleeve) stay in the layers: they draw no disc, and a coarser
grid changes nothing visible there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.bokeh.layers import KERNEL_RADIUS

_LIGHT = 230  # first max-channel byte of a bright spot whose disc shows a rim
_LIGHTS_APART_MAX = 0.02  # share of the photo's pixels beyond which lights stay in the layers
_PIXELS_PER_CELL = 4  # a light's width per cell of the grid its disc is drawn on
# drawing the discs costs per corner scattered (about 14 R of them per light cell) and per pixel
# of canvas; lights are drawn apart, the smallest first, while both stay under these many photos
_CORNERS_PER_RADIUS = 14.0
_CORNERS_MAX = 2.0
_CANVAS_MAX = 2.0
_MERGED_MAX = 1.25  # canvases of one cell size merge where they overlap: about the photo at most


class Lights(NamedTuple):
    """The point lights of a photo: their pixels, premultiplied linear colour, which is which."""

    shape: tuple[int, int]  # the photo's (height, width)
    ys: NDArray[np.intp]  # their pixels, row by row
    xs: NDArray[np.intp]
    colour: NDArray[np.float32]  # N x 3
    light: NDArray[np.intp]  # the light each pixel belongs to, 0 .. count - 1
    sizes: NDArray[np.intp]  # each light's width: its bounding box's longer side, in pixels


def find_lights(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    gain: NDArray[np.float32],
    clear: NDArray[np.bool_],
    widest: float,
) -> Lights | None:
    """The point lights to draw apart, or None when there are none or too many.

    ``lin`` is the H×W×3 linear photo, ``peak`` its H×W max channel (uint8), ``gain`` its
    highlight boost, ``clear`` where nothing covers the background (alpha = 0) and ``widest``
    the widest disc's radius: a bright blob wider than that is an area whose own width blurs
    its rim more than the layers do. Too many: over 2 % of the pixels (a night sky full of
    lights), which would make this path the slow one; they stay in the layers.
    """
    lit = ((peak >= _LIGHT) & clear).view(np.uint8)
    labels, sides = point_lights(lit, widest)
    if not 0 < np.count_nonzero(lit) <= _LIGHTS_APART_MAX * lit.size:
        return None
    return gather_lights(lit, labels, sides, lambda ys, xs: lin[ys, xs] * gain[ys, xs, None])


def point_lights(
    lit: NDArray[np.uint8], widest: float
) -> tuple[NDArray[np.int32], NDArray[np.intp]]:
    """Keep the lit blobs (8-connected) at most ``widest`` pixels wide, the smallest first, while
    drawing their discs of radius ``widest`` costs what the photo's size allows.

    ``lit`` (0 or 1) is changed in place. Blobs are found on the mask halved (a 2 x 2 block is
    lit if any of its pixels is), four times fewer pixels to label; blobs that nearly touch count
    as one, and sizes are read to within two pixels. Returns the halved grid's labels and each
    label's width in photo pixels (the longer side of its bounding box).
    """
    halved = np.ascontiguousarray(
        cv2.dilate(lit, np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
    )
    _, labels, found, _ = cv2.connectedComponentsWithStats(halved, connectivity=8)
    stats = np.asarray(found, np.intp)
    sides = 2 * np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    largest = _largest_affordable(sides[1:], 4 * stats[1:, cv2.CC_STAT_AREA], widest, lit.size)
    for i in np.nonzero(sides[1:] > largest)[0] + 1:  # label 0 is the unlit rest
        x, y, w, h = (int(v) for v in stats[i, :4])
        blob = (labels[y : y + h, x : x + w] == i).repeat(2, axis=0).repeat(2, axis=1)
        box = lit[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]
        box[blob[: box.shape[0], : box.shape[1]]] = 0
    return np.asarray(labels, np.int32), sides


def _largest_affordable(
    sides: NDArray[np.intp], pixels: NDArray[np.intp], widest: float, photo: int
) -> float:
    """The widest blob to keep: blobs up to it are at most ``widest`` wide, and drawing their discs
    (of radius ``widest``, at most) scatters at most _CORNERS_MAX photos of corners and fills at
    most _CANVAS_MAX photos of canvas. ``sides`` and ``pixels`` are each blob's width and size."""
    order = np.argsort(sides, kind="stable")
    sides, pixels = sides[order], pixels[order]
    cell = cell_sizes(sides, np.full(sides.size, widest))
    corners = np.cumsum(pixels / cell**2 * (_CORNERS_PER_RADIUS * widest / cell))
    squares = (sides + 2.0 * widest + 4.0 * cell) ** 2
    canvas = sum(
        np.minimum(np.cumsum(np.where(cell == size, squares, 0.0)), _MERGED_MAX * photo)
        for size in np.unique(cell)
    )
    fits = (sides <= widest) & (corners <= _CORNERS_MAX * photo) & (canvas <= _CANVAS_MAX * photo)
    first_miss = int(np.argmin(fits)) if not fits.all() else sides.size
    return float(sides[first_miss] - 1) if first_miss < sides.size else float(widest)


def cell_sizes(sizes: NDArray[np.intp], radius: NDArray[np.float64]) -> NDArray[np.intp]:
    """The cell each light's disc is drawn on (``workers.bokeh.discs``): 1 px up to 7 px wide,
    else the power of two nearest a quarter of its width, at most R / KERNEL_RADIUS. Powers of
    two: few cell sizes, so that more lights share a canvas."""
    near = np.round(np.log2(np.maximum(sizes / _PIXELS_PER_CELL, 1.0)))
    most = np.floor(np.log2(np.maximum(radius / KERNEL_RADIUS, 1.0)))
    return np.where(sizes < 2 * _PIXELS_PER_CELL, 1, 2 ** np.minimum(near, most)).astype(np.intp)


def gather_lights(
    lit: NDArray[np.uint8],
    labels: NDArray[np.int32],
    sides: NDArray[np.intp],
    colour: Callable[..., NDArray[np.float32]],
) -> Lights:
    """Collect the marked pixels of ``point_lights``' blobs; ``colour(ys, xs)`` gives N x 3."""
    found = cv2.findNonZero(lit)
    points = np.empty((0, 2), np.intp) if found is None else found.reshape(-1, 2).astype(np.intp)
    xs, ys = points[:, 0], points[:, 1]
    names, light = np.unique(labels[ys // 2, xs // 2], return_inverse=True)
    return Lights((lit.shape[0], lit.shape[1]), ys, xs, colour(ys, xs), light, sides[names])


def light_radii(lights: Lights, radius: NDArray[np.float32]) -> NDArray[np.float64]:
    """Each light's blur radius: its pixels' ``radius`` averaged, weighted by their energy.

    A light is drawn once, so a light across a step of the depth map takes one radius.
    """
    energy = lights.colour.sum(axis=1, dtype=np.float64)
    total = np.bincount(lights.light, energy, minlength=lights.sizes.size)
    weighted = np.bincount(lights.light, energy * radius, minlength=lights.sizes.size)
    return np.asarray(weighted / np.maximum(total, 1e-30), np.float64)


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
