"""The middle of the pipeline, written once: a photo and its matte in, the blurred photo out.

    matte → foreground (the subject's own colours at soft edges) → bokeh → rgb
                                   or, for a plain or transparent background, → cutout → rgb(a)

``render`` is pure (arrays in, arrays out, no I/O) and is what the worker's pipeline, ``blurq
blur`` and the gallery script all call, so that one job's parameters give one picture wherever it
is rendered. ``RENDER_REVISION`` names the picture it gives.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from infra.jobs import BlurParams
from workers.backgrounds import cutout
from workers.bokeh import render_bokeh
from workers.matting import estimate_foreground

RENDER_REVISION = 7
"""Bumped whenever ``render`` (foreground, bokeh) or encode change their output for the same
input, so that output keys change with it and a resubmission never reuses a result rendered the
old way. ``tests/unit/test_golden_render.py`` holds the output's hashes for each revision."""

StageTimer = Callable[[str], AbstractContextManager[object]]
"""Called with a stage's name ("foreground", "bokeh"), wraps that stage: the pipeline times it."""


def untimed(name: str) -> AbstractContextManager[object]:
    return nullcontext()


def render(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    params: BlurParams,
    depth: NDArray[np.float32] | None = None,
    *,
    stage: StageTimer = untimed,
) -> NDArray[np.uint8]:
    """Blur a photo's background behind its matted subject as the job's parameters say.

    ``rgb`` is H×W×3 uint8 sRGB, ``alpha`` the subject's H×W float32 matte in [0, 1] (the matting
    stage's output), ``depth`` an optional H×W float32 map (0 = the subject's plane, 1 =
    infinity). Uses ``params.strength``, ``strength_reference``, ``aperture`` and ``rotation``;
    returns H×W×3 uint8 sRGB, or H×W×4 (alpha = the matte) for ``params.background ==
    "transparent"``. A background other than ``blur`` replaces the bokeh stage (and is timed
    under its name).
    """
    with stage("foreground"):
        foreground = estimate_foreground(rgb, alpha)
    if params.background != "blur":
        with stage("bokeh"):
            return cutout(foreground, alpha, params.background)
    with stage("bokeh"):
        return render_bokeh(rgb, alpha, **lens(params), foreground=foreground, depth=depth)


class Lens(TypedDict):
    """A job's lens as both paths' ``render_bokeh`` take it (keyword arguments)."""

    strength: float
    strength_reference: str
    aperture: int | None
    rotation_deg: float


def lens(params: BlurParams) -> Lens:
    """The lens of a job's parameters: strength, its reference, the blades and their rotation."""
    return Lens(
        strength=params.strength,
        strength_reference=params.strength_reference,
        aperture=params.aperture,
        rotation_deg=params.rotation,
    )
