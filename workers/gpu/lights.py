"""Bright spots on the backend's arrays: the highlight boost, and point lights drawn apart.

``workers.bokeh.highlights``, ``.lights`` and ``.discs`` tell why. The boost is computed on the
device; where the CPU reads the dark share's grid enlarged at the clipped pixels only, here it
is enlarged whole (cheap on a GPU, the same values).

Point lights: the lit mask is computed on the device, and when it is empty nothing more is done.
Otherwise their irregular bookkeeping runs on the host with the CPU stage's own functions, as on
the CPU: the mask comes over once, packed to bits (1.5 MB at 12 MP); blobs are labelled, the
wide ones dropped, the rest counted against the 2 % share (after the drop, as on the CPU, so a
bright sky does not keep its small lights in the layers) and gathered (``point_lights``,
``gather_lights``); their colours and depths are read on the device at their pixels only; their
image on the layer grid (``area_grid``) and each canvas of discs (``light_canvases``: scatter
and integral image) are built on the host and uploaded, and added on the device. That host
share grows with the lights' pixels and radius, capped as on the CPU (2 % of the pixels, and
about two photos of corners and of canvas, which is what crosses to the device at most); a
photo with no pixel of max channel >= 230 where alpha = 0 has none.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from numpy.typing import NDArray

from workers.arrays import scaled_size
from workers.bokeh.aperture import aperture_corners
from workers.bokeh.discs import light_canvases
from workers.bokeh.highlights import (
    _BRIGHT,
    _CELLS,
    _CLIP_START,
    _DARK,
    _MIN_SURROUND,
    _SURROUND,
    GAIN,
)
from workers.bokeh.lights import (
    _LIGHT,
    _LIGHTS_APART_MAX,
    Lights,
    area_grid,
    gather_lights,
    light_radii,
    point_lights,
)
from workers.colour import DECODE
from workers.gpu.backend import Array, Backend
from workers.gpu.filters import box_mean
from workers.gpu.resample import lut, resize


def highlight_gain(backend: Backend, peak: Array) -> Array:
    """The H×W float32 linear gain of each pixel, from its H×W max channel ``peak`` (uint8)."""
    gain = lut(backend, GAIN, peak)
    if not bool(backend.xp.any(peak > _CLIP_START)):
        return gain
    h, w = peak.shape
    boost = resize(backend, _dark_share(backend, peak), (w, h), "linear")
    # unclipped pixels have gain 1, which this keeps exactly
    return (gain - 1.0) * boost + 1.0


def _dark_share(backend: Backend, peak: Array) -> Array:
    """How dark each pixel's surroundings are, 1 to 0, on a grid of _CELLS per window half side.

    Cells are averaged in sRGB bytes, then decoded, as on the CPU.
    """
    xp = backend.xp
    h, w = peak.shape
    half = max(_MIN_SURROUND, _SURROUND * max(h, w))
    grid = scaled_size(w, h, min(1.0, _CELLS / half))
    level = lut(backend, DECODE, resize(backend, peak, grid, "area"))
    cells = 2 * round(half * grid[0] / w) + 1
    level = box_mean(backend, level, (cells, cells), "reflect")
    t = xp.clip((level - np.float32(_DARK)) / np.float32(_BRIGHT - _DARK), 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)  # smoothstep from 1 (dark) to 0 (bright)


def find_lights(
    backend: Backend, lin: Array, peak: Array, gain: Array, clear: Array, widest: float
) -> Lights | None:
    """The point lights to draw apart, or None when there are none or too many.

    Arguments as ``workers.bokeh.lights.find_lights`` takes them, on the backend: ``lin`` the
    H×W×3 linear photo, ``peak`` its max channel, ``gain`` its boost, ``clear`` where alpha = 0,
    ``widest`` the widest disc's radius. The returned lights are host arrays.
    """
    xp = backend.xp
    lit_here = (peak >= _LIGHT) & clear
    if not bool(xp.any(lit_here)):
        return None
    packed = backend.asnumpy(xp.packbits(lit_here.reshape(-1)))
    lit = np.unpackbits(packed, count=lit_here.size).reshape(lit_here.shape)
    labels, sides = point_lights(lit, widest)
    if not 0 < np.count_nonzero(lit) <= _LIGHTS_APART_MAX * lit.size:
        return None
    return gather_lights(lit, labels, sides, partial(_colour_at, backend, lin, gain))


def _colour_at(
    backend: Backend, lin: Array, gain: Array, ys: NDArray[np.intp], xs: NDArray[np.intp]
) -> NDArray[np.float32]:
    """The boosted linear colour (N×3, on the host) of the pixels (ys, xs)."""
    at = backend.asarray(ys), backend.asarray(xs)
    return np.asarray(backend.asnumpy(lin[at] * gain[at][:, None]), np.float32)


def lights_on_grid(backend: Backend, lights: Lights, grid: tuple[int, int]) -> Array:
    """The lights' image area-averaged to the grid (width, height), H'×W'×3 on the backend."""
    return backend.asarray(area_grid(lights, grid))


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
    gives (``depth`` H×W float32 on the backend, read at the lights' pixels)."""
    at = backend.asarray(lights.ys), backend.asarray(lights.xs)
    radius = light_radii(lights, np.asarray(backend.asnumpy(depth[at]) * r_inf, np.float32))
    corners = partial(aperture_corners, blades=blades, rotation_deg=rotation_deg)
    for canvas, rows, cols in light_canvases(lights, radius, corners):
        into[rows, cols] += backend.asarray(canvas)
