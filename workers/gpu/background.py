"""The blurred background B on the backend's arrays: ``workers.bokeh.background``, step by step.

The same steps as the CPU stage (its docstring and ``workers.bokeh`` tell why), planned by its own
functions (``_layer_radii``, ``_plan_layers``, ``aperture_kernel``): estimate the background behind
each pixel (``workers.gpu.behind``); find the point lights (``workers.gpu.lights``); area-average
the premultiplied, boosted background onto the finest layer's grid; blur each layer with the
aperture, without the point lights, and blend them by each pixel's radius; fill what no
background reaches and enlarge; draw each point light's disc at its own radius
(``workers.gpu.discs``); fade to the sharp photo where the background is nearly in focus.

The host decides which steps run from a few facts about the photo (``_facts``: sure background,
clipped highlights, lit pixels, the background's depth range), read from the device in one copy
of at most eight numbers; the proxy depth reads one more (whether any cell of its grid is subject).

One difference: without a depth map, the proxy depth's distance to the subject is the exact
Euclidean one (``distance_transform_edt``, in both namespaces) where the CPU uses OpenCV's 5×5
mask approximation (within 2 % of it), so the blur radius there differs by as much.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from workers.bokeh.aperture import aperture_kernel
from workers.bokeh.background import _LAYER_PIXELS, LayerPlan, _layer_radii, _plan_layers
from workers.bokeh.behind import SUBJECT_CUT
from workers.bokeh.depth import _FAR_DISTANCE, _NEAR_DEPTH, depth_range
from workers.bokeh.highlights import _CLIP_START
from workers.bokeh.lights import _LIGHT
from workers.gpu.backend import Array, Backend
from workers.gpu.behind import background_behind
from workers.gpu.discs import draw_lights
from workers.gpu.layers import blend_layers, mix, normalised_blur, push_pull
from workers.gpu.lights import find_lights, highlight_gain, lights_on_grid
from workers.gpu.resample import resize


def blurred_background(
    backend: Backend,
    lin: Array,
    rgb: Array,
    front: Array,
    alpha: Array,
    depth: Array | None,
    r_inf: float,
    aperture: int | None,
    rotation_deg: float,
) -> Array:
    """Return the full-size linear background B (H×W×3 float32), blurred by depth.

    Arguments as ``workers.bokeh.background.blurred_background`` takes them, on the backend:
    ``lin`` the linear photo, ``rgb`` its bytes, ``front`` the subject's colour F (sRGB bytes),
    ``alpha`` and ``depth`` H×W float32.
    """
    h, w = alpha.shape
    peak = rgb.max(axis=2)
    facts = _facts(backend, alpha, depth, peak)
    if not facts.sure_background:  # blur the whole picture
        alpha = backend.xp.zeros_like(alpha)
    max_scale = min(1.0, math.sqrt(_LAYER_PIXELS / (h * w)))
    nearest, farthest = facts.nearest, facts.farthest
    # radii finer than one cell of the coarsest allowed grid cannot be rendered there
    radii = _layer_radii(nearest * r_inf, farthest * r_inf, max(1.0, 1.0 / max_scale))
    gain = highlight_gain(backend, peak, facts.clipped)
    lights = None
    if facts.lit:
        lights = find_lights(backend, lin, peak, gain, alpha == 0, radii[-1])
    plan = _plan_layers(radii, lights is not None, max_scale, (w, h))
    depth_grid = _depth_on_grid(backend, alpha, depth, plan.grid)
    prem = _premultiplied_grid(backend, *background_behind(backend, lin, front, alpha, gain), plan)
    if lights is not None:  # the lights are drawn apart: the layers start from the rest
        prem[..., :3] -= lights_on_grid(backend, lights, plan.grid)
    blended = _blended_layers(backend, prem, plan, depth_grid * r_inf, aperture, rotation_deg, w)
    background = resize(backend, push_pull(backend, blended), (w, h), "linear")
    fade = nearest * r_inf < radii[0]  # some background is nearly in focus: fade to sharp there
    if depth is None and (fade or lights is not None):
        depth = resize(backend, depth_grid, (w, h), "linear")
    if lights is not None:
        draw_lights(backend, background, lights, depth, r_inf, aperture, rotation_deg)
    if fade:
        background = _fade_to_sharp(backend, lin, background, depth, alpha, r_inf / radii[0])
    return background


class _Facts(NamedTuple):
    """What the render branches on, read from the device together."""

    sure_background: bool  # some pixel has alpha < 1 / SUBJECT_CUT
    clipped: bool  # some pixel's max channel is over the highlights' _CLIP_START
    lit: bool  # some pixel is bright enough for a point light where the background is clear
    nearest: float  # the background's depth range, as workers.bokeh.depth.depth_range gives it
    farthest: float


def _facts(backend: Backend, alpha: Array, depth: Array | None, peak: Array) -> _Facts:
    """The render's facts about the photo, matte (H×W float32) and depth map, in one copy of a
    few numbers: each read alone would wait for the device once more.

    Without sure background the whole picture is background (alpha 0 everywhere), so the facts
    that depend on alpha are read both ways and the right one kept. Depth is read where alpha
    < 0.5: the subject's own depth must not force a useless in-focus layer.
    """
    xp = backend.xp
    bright = peak >= _LIGHT
    facts = [
        xp.any(alpha < 1.0 / SUBJECT_CUT),
        xp.any(peak > _CLIP_START),
        xp.any(bright & (alpha == 0)),
        xp.any(bright),
    ]
    if depth is not None:
        behind = alpha < 0.5
        facts += [xp.min(xp.where(behind, depth, 1.0)), xp.max(xp.where(behind, depth, 0.0))]
        facts += [xp.min(depth), xp.max(depth)]
    read = backend.asnumpy(xp.stack([xp.asarray(f, xp.float64) for f in facts])).tolist()
    sure = bool(read[0])
    if depth is None:
        nearest, farthest = depth_range(alpha, None)  # a fixed range: no array is read
    else:
        nearest, farthest = read[4:6] if sure else read[6:8]
    return _Facts(sure, bool(read[1]), bool(read[2] if sure else read[3]), nearest, farthest)


def _depth_on_grid(
    backend: Backend, alpha: Array, depth: Array | None, grid: tuple[int, int]
) -> Array:
    """The given depth map area-averaged onto the grid, or else the proxy computed there."""
    if depth is not None:
        return resize(backend, depth, grid, "area")
    h, w = alpha.shape
    return _proxy_depth(backend, resize(backend, alpha, grid, "area"), w / grid[0], max(h, w))


def _proxy_depth(backend: Backend, alpha: Array, px_per_cell: float, long_side: int) -> Array:
    """Depth guessed from the distance to the subject, as ``workers.bokeh.depth.proxy_depth``:
    0.4 next to it, 1 a quarter of the long side away, on ``alpha``'s grid of cells
    ``px_per_cell`` photo pixels wide (exact Euclidean distances)."""
    xp = backend.xp
    outside = alpha < 0.5
    if bool(xp.all(outside)):
        return xp.ones_like(alpha)
    dist = backend.ndimage.distance_transform_edt(outside).astype(xp.float32)
    ramp = xp.clip(dist * np.float32(px_per_cell / long_side / _FAR_DISTANCE), 0.0, 1.0)
    return (_NEAR_DEPTH + (1.0 - _NEAR_DEPTH) * ramp).astype(xp.float32)


def _premultiplied_grid(backend: Backend, colour: Array, weight: Array, plan: LayerPlan) -> Array:
    """(colour, weight) area-averaged to the plan's finest grid, 4 channels."""
    colour = resize(backend, colour, plan.grid, "area")
    weight = resize(backend, weight, plan.grid, "area")
    return backend.xp.concatenate([colour, weight[..., None]], axis=2)


def _blended_layers(
    backend: Backend,
    prem: Array,
    plan: LayerPlan,
    radius: Array,
    blades: int | None,
    rotation_deg: float,
    width: int,
) -> Array:
    """Blur every layer and blend them by each cell's radius: premultiplied (B*w, w) on the grid.

    ``radius`` is each grid cell's blur radius in photo pixels, ``width`` the photo's.
    """
    layers = []
    for r, size in zip(plan.radii, plan.sizes, strict=True):
        kernel = backend.asarray(aperture_kernel(r * size[0] / width, blades, rotation_deg))
        layers.append(normalised_blur(backend, prem, size, kernel))
    return blend_layers(backend, layers, radius, plan.radii)


def _fade_to_sharp(
    backend: Backend, lin: Array, background: Array, depth: Array, alpha: Array, per_depth: float
) -> Array:
    """Mix the sharp photo back in where depth × R∞ is under the first layer's radius.

    ``per_depth`` is R∞ / that radius. Only where the pixel is surely background: the sharp
    subject's edge must not return through B.
    """
    xp = backend.xp
    sure = xp.clip(1.0 - SUBJECT_CUT * alpha, 0.0, 1.0)
    sharp = xp.clip(depth * np.float32(-per_depth) + 1.0, 0.0, 1.0) * sure
    return mix(lin, background, sharp)
