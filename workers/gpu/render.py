"""``workers.render.render`` on the backend's arrays: foreground, then bokeh or a cut-out.

The same stages and parameters as the OpenCV path (``workers.render``), each computed where the
arrays are; the result stays on the backend (the caller copies it to the host for encoding).
"""

from __future__ import annotations

import numpy as np

from infra.jobs import BlurParams
from workers.backgrounds import parse_colour
from workers.colour import DECODE
from workers.gpu import bokeh, foreground
from workers.gpu.backend import Array, Backend
from workers.gpu.colour import to_linear, to_srgb
from workers.render import StageTimer, lens, untimed


def render(
    backend: Backend,
    rgb: Array,
    alpha: Array,
    params: BlurParams,
    depth: Array | None = None,
    *,
    stage: StageTimer = untimed,
) -> Array:
    """``workers.render.render`` with every array on the backend: H×W×3 (or ×4) uint8 there."""
    rgb, alpha = backend.asarray(rgb), backend.asarray(alpha)
    with stage("foreground"):
        front = foreground.estimate_foreground(backend, rgb, alpha)
    with stage("bokeh"):
        if params.background == "transparent":
            return with_alpha(backend, front, alpha)
        if params.background != "blur":
            return over_colour(backend, front, alpha, parse_colour(params.background))
        return bokeh.render_bokeh(
            backend, rgb, alpha, **lens(params), foreground=front, depth=depth
        )


def over_colour(
    backend: Backend, front: Array, alpha: Array, colour: tuple[int, int, int]
) -> Array:
    """``workers.backgrounds.over_colour``: F over a plain sRGB colour, in linear light."""
    plain = backend.asarray(DECODE[np.array(colour, np.uint8)])
    weight = alpha[..., None]
    return to_srgb(backend, weight * to_linear(backend, front) + (1.0 - weight) * plain)


def with_alpha(backend: Backend, front: Array, alpha: Array) -> Array:
    """``workers.backgrounds.with_alpha``: F with its matte as the fourth channel (RGBA bytes)."""
    xp = backend.xp
    return xp.concatenate([front, xp.round(alpha * 255.0).astype(xp.uint8)[..., None]], axis=2)
