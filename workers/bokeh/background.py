"""The blurred background B: the photo without its subject, blurred by depth, at full size.

In order: estimate the background behind each pixel, and its weight (``behind``); find the point
lights (``lights``); plan the layers, one per blur radius, each on a grid just fine enough for its
kernel; area-average that premultiplied, highlight-boosted background onto the finest layer's
grid; blur each layer with the aperture, without the point lights, and blend them by each pixel's
radius; fill what no background reaches and enlarge; draw each point light's disc at its own
radius (``discs``); fade to the sharp photo where the background is nearly in focus.
``workers.bokeh`` tells why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import f32, resize, scaled_size
from workers.bokeh.aperture import aperture_corners, aperture_kernel
from workers.bokeh.behind import SUBJECT_CUT, background_behind
from workers.bokeh.depth import depth_range, proxy_depth
from workers.bokeh.discs import draw_lights
from workers.bokeh.enlarge import Enlarge
from workers.bokeh.highlights import highlight_gain
from workers.bokeh.layers import (
    KERNEL_RADIUS,
    blend_layers,
    mix,
    normalised_blur,
    push_pull,
)
from workers.bokeh.lights import Lights, area_grid, find_lights, light_radii

_MAX_LAYERS = 4
_TEXTURE_RADIUS = 4.0  # kernel radius in cells of layers without lights: blur within 3 % of R
_LAYER_PIXELS = 1.0e6  # per-layer cap: keeps cost flat; small radii on big photos go under 8 px

Kernel = Callable[[float], NDArray[np.float32]]
"""The normalised aperture kernel of a radius (in the pixels of the grid it is applied on)."""


@dataclass(frozen=True)
class LayerPlan:
    """The blurred layers: each one's radius in photo pixels and grid size."""

    radii: list[float]
    sizes: list[tuple[int, int]]  # (width, height) of each layer's grid
    grid: tuple[int, int]  # the finest layer's grid; the others are resampled onto it


def blurred_background(
    lin: NDArray[np.float32],
    rgb: NDArray[np.uint8],
    front: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    depth: NDArray[np.float32] | None,
    r_inf: float,
    aperture: int | None,
    rotation_deg: float,
) -> NDArray[np.float32]:
    """Return the full-size linear background B (H×W×3 float32), blurred by depth.

    ``front`` is the subject's estimated colour F (H×W×3 sRGB): what the photo shows beyond it,
    where the matte is partial, is the background behind.
    """
    h, w = alpha.shape
    if not np.any(alpha < 1.0 / SUBJECT_CUT):  # no sure background: blur the whole picture
        alpha = np.zeros_like(alpha)
    max_scale = min(1.0, math.sqrt(_LAYER_PIXELS / (h * w)))
    nearest, farthest = depth_range(alpha, depth)
    # radii finer than one cell of the coarsest allowed grid cannot be rendered there
    radii = _layer_radii(nearest * r_inf, farthest * r_inf, max(1.0, 1.0 / max_scale))
    peak = _max_channel(rgb)
    gain = highlight_gain(peak)
    lights = find_lights(lin, peak, gain, alpha == 0, radii[-1])
    plan = _plan_layers(radii, lights is not None, max_scale, (w, h))
    kernel: Kernel = partial(aperture_kernel, blades=aperture, rotation_deg=rotation_deg)
    depth_grid = _depth_on_grid(alpha, depth, plan.grid)
    prem = _premultiplied_grid(*background_behind(lin, front, alpha, gain), plan.grid)
    blended = _blended_layers(prem, lights, plan, depth_grid * r_inf, kernel, w)
    background = resize(push_pull(blended), (w, h), cv2.INTER_LINEAR)
    if lights is not None:
        radius = light_radii(lights, _depth_at_lights(lights, depth, depth_grid) * r_inf)
        corners = partial(aperture_corners, blades=aperture, rotation_deg=rotation_deg)
        draw_lights(background, lights, radius, corners)
    if nearest * r_inf < radii[0]:  # some background is nearly in focus: fade to sharp there
        if depth is None:
            depth = resize(depth_grid, (w, h), cv2.INTER_LINEAR)
        sure = f32(np.clip(1.0 - SUBJECT_CUT * alpha, 0.0, 1.0))  # surely background
        background = _fade_to_sharp(lin, background, depth, sure, r_inf / radii[0])
    return background


def _max_channel(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The H×W max of the three channels (HSV's value), which sets a pixel's highlight boost."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    return np.ascontiguousarray(hsv[..., 2], dtype=np.uint8)


def _layer_radii(r_lo: float, r_hi: float, floor: float) -> list[float]:
    """Radii of the blurred layers: evenly spaced, about a pixel apart at least."""
    lo = max(r_lo, floor)
    hi = max(r_hi, lo)
    count = 1 if hi - lo < 0.5 else min(_MAX_LAYERS, 1 + math.ceil(hi - lo))
    return [float(r) for r in np.linspace(lo, hi, count)]


def _plan_layers(
    radii: list[float], lights_apart: bool, max_scale: float, size: tuple[int, int]
) -> LayerPlan:
    """Each layer's grid: its kernel KERNEL_RADIUS cells wide, never over _LAYER_PIXELS.

    Layers whose lights are drawn apart hold texture only, which shows no disc edge: they are
    rendered with a kernel of _TEXTURE_RADIUS cells, on grids up to four times smaller.
    """
    cells = _TEXTURE_RADIUS if lights_apart else KERNEL_RADIUS
    sizes = [scaled_size(*size, min(1.0, cells / r, max_scale)) for r in radii]
    return LayerPlan(radii, sizes, max(sizes))


def _depth_on_grid(
    alpha: NDArray[np.float32], depth: NDArray[np.float32] | None, grid: tuple[int, int]
) -> NDArray[np.float32]:
    """The given depth map area-averaged onto the grid, or else the proxy computed there."""
    if depth is not None:
        return resize(np.ascontiguousarray(depth), grid, cv2.INTER_AREA)
    h, w = alpha.shape
    return proxy_depth(resize(alpha, grid, cv2.INTER_AREA), w / grid[0], max(h, w))


def _blended_layers(
    with_lights: NDArray[np.float32],
    lights: Lights | None,
    plan: LayerPlan,
    radius: NDArray[np.float32],
    kernel: Kernel,
    width: int,
) -> NDArray[np.float32]:
    """Blur every layer and blend them by each cell's radius: premultiplied (B*w, w) on the grid.

    ``with_lights`` is the premultiplied background on the grid, ``width`` the photo's.
    """
    prem = with_lights
    if lights is not None:  # the lights are drawn apart: the layers start from the rest
        prem = with_lights.copy()
        prem[..., :3] -= area_grid(lights, plan.grid)
    layers = [
        normalised_blur(prem, size, kernel(r * size[0] / width))
        for r, size in zip(plan.radii, plan.sizes, strict=True)
    ]
    return blend_layers(layers, radius, plan.radii)


def _premultiplied_grid(
    colour: NDArray[np.float32], weight: NDArray[np.float32], size: tuple[int, int]
) -> NDArray[np.float32]:
    """Return (colour, weight) area-averaged to size, 4 channels."""
    return np.dstack([resize(colour, size, cv2.INTER_AREA), resize(weight, size, cv2.INTER_AREA)])


def _depth_at_lights(
    lights: Lights, depth: NDArray[np.float32] | None, depth_grid: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Each light pixel's depth: from the given map there, else the grid's enlarged there."""
    if depth is not None:
        return depth[lights.ys, lights.xs]
    return Enlarge(depth_grid.shape, lights.shape).at(depth_grid, lights.ys, lights.xs)


def _fade_to_sharp(
    lin: NDArray[np.float32],
    background: NDArray[np.float32],
    depth: NDArray[np.float32],
    weight: NDArray[np.float32],
    per_depth: float,
) -> NDArray[np.float32]:
    """Mix the sharp photo back in where depth × R∞ is under the first layer's radius.

    ``per_depth`` is R∞ / that radius. Only where the pixel is background: the sharp subject's
    edge must not return through B.
    """
    sharp = np.clip(depth * (-per_depth) + 1.0, 0.0, 1.0) * weight
    return mix(lin, background, sharp)
