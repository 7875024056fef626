"""Each point light drawn once at its own radius, on the backend's arrays: ``workers.bokeh.discs``.

The same discs as the CPU stage (its docstring tells the method): the lights' cells' aperture
corners scattered (``bincount``), one integral image (two ``cumsum``), the canvas enlarged
bilinearly where its cells are wider than a pixel (``workers.gpu.resample.resize``) and added
into the background. Each light's radius (rounded to 1/8 px) and cell (``cell_sizes``) are the
CPU stage's, decided on the host from a table of six numbers per light read in one copy (its
pixel count, its radius, the extremes of its rows and columns).

One difference, for the GPU's sake: the CPU groups lights near each other onto small canvases
(``_grouped``), because its cost is the canvases' area; on a GPU a canvas costs as many kernel
launches and waits for the device however small it is, and 60 lights far apart make some 50
canvases. So here all lights of one cell size share one canvas, their bounding box, and all
their radii are scattered at once (each cell's corners found by ``searchsorted`` in the radii's
corners laid end to end): a few canvases, each a fixed number of steps. The picture is the
same to float rounding: scattering, integrating and enlarging are linear, a canvas's cells are
aligned with the photo's origin either way, and every canvas ends in a margin of zeros, so its
edge (where the enlargement repeats the edge cell) adds nothing. A larger canvas costs memory:
at most about the photo's pixels over the cell's area, three float64 channels.

What crosses besides the table: one number per light back to the device (its place when sorted
by cell size) and one per light of each canvas (its radius's number there), each canvas's radii
corners (about 14 R numbers each) to the device, and per canvas the few scalars CuPy's
``unique``, ``bincount`` and the corners' total read to size their outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from workers.bokeh.aperture import Corners, aperture_corners
from workers.bokeh.discs import _RADIUS_STEP, _groups, _in_frame
from workers.bokeh.lights import Lights, cell_sizes
from workers.gpu.backend import Array, Backend
from workers.gpu.lights import label_extremes
from workers.gpu.resample import resize


class LightPlan(NamedTuple):
    """Per light, on the host: pixel count, rounded radius, cell size, pixel bounds."""

    pixels: NDArray[np.intp]
    radius: NDArray[np.float64]
    cells: NDArray[np.intp]
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


def light_plan(backend: Backend, lights: Lights, radius: Array) -> LightPlan:
    """How each light is drawn, from each light pixel's blur radius (on the backend).

    A light's radius is its pixels' averaged by energy (``workers.bokeh.lights.light_radii``),
    rounded to 1/8 px as ``workers.bokeh.discs`` rounds it.
    """
    xp = backend.xp
    n = lights.sizes.size
    energy = lights.colour.sum(axis=1, dtype=xp.float64)
    sums = [xp.ones_like(energy), energy, energy * radius]
    index = (lights.light[:, None] * len(sums) + xp.arange(len(sums))).ravel()
    summed = xp.bincount(index, xp.stack(sums, axis=1).ravel(), minlength=n * len(sums))
    count, total, weighted = summed.reshape(n, len(sums)).T
    top, bottom = label_extremes(backend, lights.ys, lights.light + 1, n)
    left, right = label_extremes(backend, lights.xs, lights.light + 1, n)
    table = xp.stack([count, weighted / xp.maximum(total, 1e-30), top, bottom, left, right])
    count, radius, *bounds = backend.asnumpy(table)
    radius = np.round(radius * _RADIUS_STEP) / _RADIUS_STEP
    cells = cell_sizes(lights.sizes, radius)
    return LightPlan(count.astype(np.intp), radius, cells, np.asarray(bounds, np.intp))


def _canvases(
    backend: Backend, lights: Lights, plan: LightPlan, corners: Callable[[float], Corners]
) -> Iterator[tuple[Array, slice, slice]]:
    """One canvas per cell size, and the photo's rows and columns each goes to."""
    # the pixels sorted by their light's cell size: each canvas's pixels are one slice of them
    order = np.argsort(plan.cells, kind="stable")
    place = np.empty_like(order)
    place[order] = np.arange(order.size)
    pixels = backend.xp.argsort(backend.asarray(place)[lights.light])
    ends = np.cumsum(plan.pixels[order])
    for run in _groups(plan.cells[order]):  # positions in order
        members = order[run]
        top, bottom, left, right = plan.bounds[:, members]
        box = (int(top.min()), int(bottom.max()), int(left.min()), int(right.max()))
        mine = pixels[ends[run[0]] - plan.pixels[members[0]] : ends[run[-1]]]
        yield _canvas(backend, lights, mine, plan, members, box, corners)


def _canvas(
    backend: Backend,
    lights: Lights,
    pixels: Array,
    plan: LightPlan,
    members: NDArray[np.intp],
    box: tuple[int, int, int, int],
    corners: Callable[[float], Corners],
) -> tuple[Array, slice, slice]:
    """The discs of the lights ``members`` (all of one cell size; ``pixels`` their pixels'
    indices on the backend, ``box`` their bounds: top, bottom, left, right) and where they lie
    in the photo. As ``workers.bokeh.discs._canvas``: cells aligned with the photo's origin, a
    cell beyond the widest kernel around them."""
    xp = backend.xp
    step = int(plan.cells[members[0]])
    radii, which_radius = np.unique(plan.radius[members], return_inverse=True)
    kernels = [corners(r / step) for r in radii.tolist()]
    margin = 2 + max(int(max(np.abs(k.rows).max(), np.abs(k.cols).max())) for k in kernels)
    top, left = box[0] // step - margin, box[2] // step - margin
    height, width = box[1] // step - top + margin + 1, box[3] // step - left + margin + 1
    radius_of = np.zeros(plan.radius.size, np.intp)
    radius_of[members] = which_radius
    at = (lights.ys[pixels] // step - top) * width + (lights.xs[pixels] // step - left)
    # a light cell per radius and cell of the canvas, its pixels' colour summed (a block mean)
    key = backend.asarray(radius_of)[lights.light[pixels]] * (height * width) + at
    cells, which = xp.unique(key, return_inverse=True)
    colour = lights.colour[pixels].astype(xp.float64) / (step * step)
    summed = xp.bincount(
        (which.reshape(-1, 1) * 3 + xp.arange(3)).ravel(), colour.ravel(), minlength=3 * cells.size
    ).reshape(-1, 3)
    index, weight = _scattered(backend, kernels, cells, summed, height * width, width)
    flat = xp.bincount(index, weight, minlength=height * width * 3).reshape(height, width, 3)
    canvas = xp.cumsum(xp.cumsum(flat, axis=0), axis=1).astype(xp.float32)
    if step > 1:
        canvas = resize(backend, canvas, (width * step, height * step), "linear")
    return _in_frame(canvas, top * step, left * step, lights.shape)


def _scattered(
    backend: Backend, kernels: list[Corners], cells: Array, summed: Array, area: int, width: int
) -> tuple[Array, Array]:
    """Where each light cell's kernel corners land on the canvas (flat, 3 channels interleaved)
    and their weights. ``cells`` is each light cell's radius number × ``area`` + its place on
    the canvas, ``summed`` its colour (cells × 3); ``kernels`` are the radii's corners."""
    xp = backend.xp
    lengths = np.array([k.values.size for k in kernels])
    offsets = backend.asarray(np.concatenate([k.rows * width + k.cols for k in kernels]))
    values = backend.asarray(np.concatenate([k.values for k in kernels]))
    starts = backend.asarray(np.cumsum(lengths) - lengths)
    radius, place = cells // area, cells % area
    length = backend.asarray(lengths)[radius]
    ends = xp.cumsum(length)
    every = xp.arange(int(ends[-1]))
    # each corner's light cell (the first whose corners end after it), and which corner it is
    owner = xp.searchsorted(ends, every, side="right")
    corner = starts[radius[owner]] + every - (ends - length)[owner]
    index = (place[owner] + offsets[corner])[:, None] * 3 + xp.arange(3)
    return index.ravel(), (summed[owner] * values[corner][:, None]).ravel()
