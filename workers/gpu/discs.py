"""Each point light drawn once at its own radius, on the backend's arrays: ``workers.bokeh.discs``.

The same canvases as the CPU stage (its docstring tells the method): each canvas's light cells'
aperture corners scattered (``bincount``), one integral image (two ``cumsum``), the canvas
enlarged bilinearly where its cells are wider than a pixel (``workers.gpu.resample.resize``) and
added into the background. The decisions are the CPU stage's own functions, made on the host
from a table of eight numbers per light read in one copy (its pixel count, the sums and extremes
of its rows and columns, its radius): the radii rounded, each light's cell (``cell_sizes``) and
canvas group (``_grouped``). The pixels stay on the device, sorted by group and radius so that
each canvas and radius is one slice of them. What else crosses: one number per light back to the
device (its place in that order), each radius's aperture corners (about 14 R numbers per canvas
it is in), and per canvas and radius the few scalars CuPy's ``unique`` and ``bincount`` read to
size their output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from workers.bokeh.aperture import Corners, aperture_corners
from workers.bokeh.discs import _RADIUS_STEP, _grouped, _groups, _in_frame
from workers.bokeh.lights import Lights, cell_sizes
from workers.gpu.backend import Array, Backend
from workers.gpu.lights import label_extremes
from workers.gpu.resample import resize


class LightPlan(NamedTuple):
    """Per light, on the host: pixel count, rounded radius, cell, canvas group, pixel bounds."""

    pixels: NDArray[np.intp]
    radius: NDArray[np.float64]
    cells: NDArray[np.intp]
    group: NDArray[np.intp]
    bounds: NDArray[np.intp]  # 4 x lights: top, bottom, left, right pixel


def draw_lights(
    backend: Backend,
    into: Array,
    lights: Lights,
    depth: Array,
    r_inf: float,
    blades: int | None,
    rotation_deg: float,
) -> None:
    """Add each light's disc into the full-size H×W×3 linear ``into``, at the radius its depth
    gives (``depth`` H×W float32 on the backend, read at the lights' pixels); ``lights`` as
    ``workers.gpu.lights.find_lights`` gives them."""
    plan = light_plan(backend, lights, depth[lights.ys, lights.xs] * np.float32(r_inf))
    corners = partial(aperture_corners, blades=blades, rotation_deg=rotation_deg)
    for canvas, rows, cols in _canvases(backend, lights, plan, corners):
        into[rows, cols] += canvas


def _canvases(
    backend: Backend, lights: Lights, plan: LightPlan, corners: Callable[[float], Corners]
) -> Iterator[tuple[Array, slice, slice]]:
    """The plan's canvases, group by group, and the photo's rows and columns each goes to."""
    # the pixels sorted by (group, radius): each canvas and radius is one slice of them
    order = np.lexsort((plan.radius, plan.group))
    place = np.empty_like(order)
    place[order] = np.arange(order.size)
    pixels = backend.xp.argsort(backend.asarray(place)[lights.light])
    ends = np.cumsum(plan.pixels[order])
    starts = ends - plan.pixels[order]
    for in_group in _groups(plan.group[order]):  # positions in order
        members = order[in_group]
        eighths = np.rint(plan.radius[members] * _RADIUS_STEP).astype(np.intp)
        runs = [in_group[run] for run in _groups(eighths)]
        segments = [pixels[starts[run[0]] : ends[run[-1]]] for run in runs]
        radii = [float(plan.radius[order[run[0]]]) for run in runs]
        top, bottom, left, right = plan.bounds[:, members]
        box = (int(top.min()), int(bottom.max()), int(left.min()), int(right.max()))
        step = int(plan.cells[members[0]])
        yield _canvas(backend, lights, segments, radii, step, box, corners)


def light_plan(backend: Backend, lights: Lights, radius: Array) -> LightPlan:
    """How each light is drawn, from each light pixel's blur radius (on the backend).

    A light's radius is its pixels' averaged by energy (``workers.bokeh.lights.light_radii``),
    rounded to 1/8 px as ``workers.bokeh.discs`` rounds it.
    """
    xp = backend.xp
    n = lights.sizes.size
    energy = lights.colour.sum(axis=1, dtype=xp.float64)
    sums = [xp.ones_like(energy), lights.ys, lights.xs, energy, energy * radius]
    index = (lights.light[:, None] * len(sums) + xp.arange(len(sums))).ravel()
    summed = xp.bincount(index, xp.stack(sums, axis=1).ravel(), minlength=n * len(sums))
    count, y, x, total, weighted = summed.reshape(n, len(sums)).T
    top, bottom = label_extremes(backend, lights.ys, lights.light + 1, n)
    left, right = label_extremes(backend, lights.xs, lights.light + 1, n)
    table = xp.stack([count, y, x, weighted / xp.maximum(total, 1e-30), top, bottom, left, right])
    count, y, x, radius, *bounds = backend.asnumpy(table)
    count = count.astype(np.intp)
    radius = np.round(radius * _RADIUS_STEP) / _RADIUS_STEP
    cells = cell_sizes(lights.sizes, radius)
    # how far a light's canvas reaches around it: its kernel and a cell of bilinear tail
    reach = (np.ceil(radius / cells + 0.5).astype(np.intp) + 2) * cells
    # the grouping reads each light's centre only: one stand-in pixel per light, there
    centres = Lights(lights.shape, y / count, x / count, lights.colour, np.arange(n), lights.sizes)
    group = _grouped(centres, cells, reach)
    return LightPlan(count, radius, cells, group, np.asarray(bounds, np.intp))


def _canvas(
    backend: Backend,
    lights: Lights,
    segments: list[Array],
    radii: list[float],
    step: int,
    box: tuple[int, int, int, int],
    corners: Callable[[float], Corners],
) -> tuple[Array, slice, slice]:
    """The discs of the light pixels ``segments`` (indices on the backend, one array per radius
    of ``radii``) and where they lie in the photo; ``box`` bounds their pixels (top, bottom,
    left, right). As ``workers.bokeh.discs._canvas``: cells of ``step`` pixels aligned with the
    photo's origin, a cell beyond the widest kernel around them."""
    xp = backend.xp
    kernels = [corners(r / step) for r in radii]
    margin = 2 + max(int(max(np.abs(k.rows).max(), np.abs(k.cols).max())) for k in kernels)
    top, left = box[0] // step - margin, box[2] // step - margin
    height, width = box[1] // step - top + margin + 1, box[3] // step - left + margin + 1
    channels = xp.arange(3)
    index, weight = [], []
    for pixels, kernel in zip(segments, kernels, strict=True):
        at = (lights.ys[pixels] // step - top) * width + (lights.xs[pixels] // step - left)
        cells, which = xp.unique(at, return_inverse=True)
        colour = lights.colour[pixels].astype(xp.float64) / (step * step)
        summed = xp.bincount(
            (which.reshape(-1, 1) * 3 + channels).ravel(), colour.ravel(), minlength=3 * cells.size
        ).reshape(-1, 1, 3)
        offsets = backend.asarray(kernel.rows * width + kernel.cols)
        index.append(((cells[:, None] + offsets)[..., None] * 3 + channels).ravel())
        weight.append((summed * backend.asarray(kernel.values)[:, None]).ravel())
    flat = xp.bincount(xp.concatenate(index), xp.concatenate(weight), minlength=height * width * 3)
    canvas = xp.cumsum(xp.cumsum(flat.reshape(height, width, 3), axis=0), axis=1)
    canvas = canvas.astype(xp.float32)
    if step > 1:
        canvas = resize(backend, canvas, (width * step, height * step), "linear")
    return _in_frame(canvas, top * step, left * step, lights.shape)
