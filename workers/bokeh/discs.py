"""Each point light drawn once: the aperture's shape at the light's own radius.

``workers.bokeh.lights`` finds the point lights and takes them out of the layers; here each is
drawn as the lens draws it, one disc (or polygon) of the radius its own depth gives, and added to
the blurred background. It is not divided by the background's weight as the rest of the
background is: that weight fills what the subject hides with what is seen around it, texture like
the texture nearby, but a light is one light, not a sample of lights behind the subject. So a
light's disc is cut by the subject (in the composite) and by the frame, and keeps its energy
wherever it lands.

A light pixel's disc is the kernel shifted to it, which costs the kernel's area: at R = 180
(strength 100 on 12 MP) 100,000 cells a pixel. The kernel's second differences are only at its
rim, about 14 R of them (``aperture_corners``), so the lights' corners are scattered onto a
canvas and one integral image (``cv2.integral``) draws all their discs at once: the cost is the
lights' pixels times 14 R, plus a few passes over the canvas.

A light b pixels wide has a rim about b pixels wide however it is drawn (its own width spreads
it), so lights 8 px wide or more are drawn on cells of about b / 4 pixels (a power of two, never
over R / KERNEL_RADIUS, so that the shape stays drawn) and enlarged bilinearly, which widens
their rim by a fraction of its width; lights up to 7 px wide, the ones whose rim is crisp, are
drawn at full resolution (``workers.bokeh.lights.cell_sizes``). Lights of one cell size near
each other share a canvas: they are grouped by squares, of the side (one to sixteen reaches)
that gives the smallest canvases in all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.bokeh.aperture import Corners
from workers.bokeh.lights import Lights, cell_sizes

_SQUARES = (1, 2, 4, 8, 16)  # sides of the squares lights are grouped by, in reaches
_RADIUS_STEP = 8  # radii are rounded to 1/8 px, so lights at nearly one depth share a kernel


def draw_lights(
    into: NDArray[np.float32],
    lights: Lights,
    radius: NDArray[np.float64],
    corners: Callable[[float], Corners],
) -> None:
    """Add each light's disc into the full-size H×W×3 linear image ``into``.

    ``radius`` is each light's blur radius in pixels and ``corners(r)`` the aperture of radius r
    (in the cells it is drawn on) as second differences.
    """
    for canvas, rows, cols in light_canvases(lights, radius, corners):
        cv2.add(into[rows, cols], canvas, dst=into[rows, cols])


def light_canvases(
    lights: Lights, radius: NDArray[np.float64], corners: Callable[[float], Corners]
) -> Iterator[tuple[NDArray[np.float32], slice, slice]]:
    """The lights' discs, canvas by canvas (H'×W'×3 linear), and the photo's rows and columns
    each is to be added to; arguments as ``draw_lights`` takes them."""
    radius = np.round(radius * _RADIUS_STEP) / _RADIUS_STEP
    cells = cell_sizes(lights.sizes, radius)
    # how far a light's canvas reaches around it: its kernel and a cell of bilinear tail
    reach = (np.ceil(radius / cells + 0.5).astype(np.intp) + 2) * cells
    group = _grouped(lights, cells, reach)
    for members in _groups(group[lights.light]):
        step = int(cells[lights.light[members[0]]])
        yield _canvas(lights, members, radius[lights.light[members]], step, corners)


def _grouped(lights: Lights, cells: NDArray[np.intp], reach: NDArray[np.intp]) -> NDArray[np.intp]:
    """Each light's group: lights of one cell size in one square share a canvas.

    Squares are tried at sides of 1 to 16 reaches (of the farthest-reaching light); the side
    whose groups' canvases (the lights' boxes grown by their reach) add up to the least area
    wins: small squares when lights are few and far apart, large ones when they are dense.
    """
    count = np.bincount(lights.light)
    y = np.bincount(lights.light, lights.ys) / count  # each light's centre
    x = np.bincount(lights.light, lights.xs) / count
    grow = reach + lights.sizes / 2.0
    best, best_area = np.zeros_like(cells), np.inf
    for k in _SQUARES:
        side = k * int(reach.max())
        square = (y // side) * (lights.shape[1] // side + 1) + x // side
        names, group = np.unique(square * (int(cells.max()) + 1) + cells, return_inverse=True)
        top, left = np.full(names.size, np.inf), np.full(names.size, np.inf)
        bottom, right = np.full(names.size, -np.inf), np.full(names.size, -np.inf)
        np.minimum.at(top, group, y - grow)
        np.maximum.at(bottom, group, y + grow)
        np.minimum.at(left, group, x - grow)
        np.maximum.at(right, group, x + grow)
        area = float(np.sum((bottom - top) * (right - left)))
        if area < best_area:
            best, best_area = group, area
    return best


def _groups(key: NDArray[np.intp]) -> list[NDArray[np.intp]]:
    """Indices of the pixels, grouped by key."""
    order = np.argsort(key, kind="stable")
    breaks = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, breaks)


def _canvas(
    lights: Lights,
    group: NDArray[np.intp],
    radius: NDArray[np.float64],
    step: int,
    corners: Callable[[float], Corners],
) -> tuple[NDArray[np.float32], slice, slice]:
    """The discs of the light pixels ``group`` (of the given radii) and where they lie in the photo.

    Drawn on cells of step pixels aligned with the photo's origin: each pixel's colour goes to
    its cell (a block mean), the cells' kernel corners are scattered and integrated, and the
    canvas enlarged bilinearly; it reaches a cell beyond the widest kernel, so that nothing of it
    is lost, and may reach beyond the photo, which only the returned part shows.
    """
    ys, xs = lights.ys[group] // step, lights.xs[group] // step
    kernels = {r: corners(r / step) for r in np.unique(radius).tolist()}
    margin = 2 + max(int(max(np.abs(k.rows).max(), np.abs(k.cols).max())) for k in kernels.values())
    top, left = int(ys.min()) - margin, int(xs.min()) - margin
    height, width = int(ys.max()) - top + margin + 1, int(xs.max()) - left + margin + 1
    at = (ys - top) * width + (xs - left)
    colour = lights.colour[group].astype(np.float64) / (step * step)
    index, weight = [], []
    for r, kernel in kernels.items():
        mine = radius == r
        cells, which = np.unique(at[mine], return_inverse=True)
        summed = [np.bincount(which, channel, cells.size) for channel in colour[mine].T]
        index.append((cells[:, None] + (kernel.rows * width + kernel.cols)).ravel())
        weight.append([(c[:, None] * kernel.values).ravel() for c in summed])
    flat = np.empty((height * width, 3), np.float32)
    everywhere = np.concatenate(index)
    for c in range(3):  # one scatter per channel for all radii: each costs the canvas's area
        flat[:, c] = np.bincount(everywhere, np.concatenate([w[c] for w in weight]), flat.shape[0])
    canvas = cv2.integral(flat.reshape(height, width, 3), sdepth=cv2.CV_32F)
    canvas = canvas[1:, 1:]
    if step > 1:
        canvas = cv2.resize(canvas, (width * step, height * step), interpolation=cv2.INTER_LINEAR)
    return _in_frame(np.asarray(canvas, np.float32), top * step, left * step, lights.shape)


def _in_frame(
    canvas: NDArray[np.float32], top: int, left: int, shape: tuple[int, int]
) -> tuple[NDArray[np.float32], slice, slice]:
    """The part of a canvas placed at (top, left) that lies in a photo of this shape."""
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(shape[0], top + canvas.shape[0]), min(shape[1], left + canvas.shape[1])
    part = canvas[y0 - top : y1 - top, x0 - left : x1 - left]
    return part, slice(y0, y1), slice(x0, x1)
