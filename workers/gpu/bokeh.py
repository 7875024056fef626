"""``render_bokeh`` on the backend's arrays: ``workers.bokeh.render_bokeh``, step for step.

The same contract, method and parameters as the OpenCV renderer (``workers.bokeh`` tells the
method; it stays the CPU default and is the reference this is tested against), written once
against the array namespace so that it runs on CuPy on a GPU and on NumPy in the CPU test suite:
decode to linear light, the blurred background (``workers.gpu.background``), the composite
``alpha·F + (1−alpha)·B`` and the encode to sRGB bytes, exact for alpha = 1.

Modules, as on the CPU: ``background`` (the steps of B), ``behind`` (the background behind each
pixel), ``lights`` (the highlight boost and the point lights), ``layers`` (blur, blend, fill).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.bokeh.render import _check_inputs, radius_at_infinity
from workers.gpu.backend import Array, Backend
from workers.gpu.background import blurred_background
from workers.gpu.colour import to_linear, to_srgb
from workers.gpu.layers import mix
from workers.matting.foreground import estimate_foreground


def render_bokeh(
    backend: Backend,
    rgb: Array,
    alpha: Array,
    *,
    strength: float,
    strength_reference: str = "frame",
    aperture: int | None = None,
    rotation_deg: float = 0.0,
    foreground: Array | None = None,
    depth: Array | None = None,
) -> Array:
    """Blur the background of an sRGB photo behind its subject like a wide-open lens.

    ``rgb`` and ``foreground`` are H×W×3 uint8, ``alpha`` and ``depth`` H×W float32 in [0, 1],
    arrays of the backend (host arrays are copied there); the rest as
    ``workers.bokeh.render_bokeh`` takes it. Returns H×W×3 uint8 sRGB on the backend. Without
    ``foreground``, F is ``rgb`` in the composite, and the subject's colour the background behind
    is estimated from is ``workers.matting.estimate_foreground``'s, computed on the host (a copy
    of the photo and matte there and back): callers on a GPU give it.
    """
    _check_inputs(
        _stand_in(rgb),
        _stand_in(alpha),
        strength,
        aperture,
        rotation_deg,
        _stand_in(foreground),
        _stand_in(depth),
    )
    rgb, alpha = backend.asarray(rgb), backend.asarray(alpha)
    _check_unit_range(backend, "alpha", alpha)
    if depth is not None:
        depth = backend.asarray(depth)
        _check_unit_range(backend, "depth", depth)
    if foreground is not None:
        foreground = backend.asarray(foreground)
    # NumPy's count_nonzero, the one array call in there, dispatches to CuPy's on its arrays
    r_inf = radius_at_infinity(alpha, strength, strength_reference)
    lin = to_linear(backend, rgb)
    front = foreground
    if front is None:
        front = backend.asarray(estimate_foreground(backend.asnumpy(rgb), backend.asnumpy(alpha)))
    background = blurred_background(
        backend, lin, rgb, front, alpha, depth, r_inf, aperture, rotation_deg
    )
    return _composite(backend, rgb, lin, foreground, background, alpha)


def _composite(
    backend: Backend,
    rgb: Array,
    lin: Array,
    foreground: Array | None,
    background: Array,
    alpha: Array,
) -> Array:
    """alpha*F + (1-alpha)*B in sRGB bytes, F the foreground (else the photo, ``lin``)."""
    if foreground is None:  # alpha = 1 gives back lin, which encodes to rgb's bytes exactly
        return to_srgb(backend, mix(lin, background, alpha))
    out = to_srgb(backend, mix(to_linear(backend, foreground), background, alpha))
    # alpha = 1 keeps the input bytes even where F differs there
    return backend.xp.where((alpha >= 1.0)[..., None], rgb, out)


def _stand_in(array: object) -> Any:
    """A host array of an array's shape and dtype, all zeros, copying nothing, for the CPU
    stage's checks of shapes and dtypes (values are checked on the backend); anything else
    (None, a list) as it is."""
    shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
    if shape is None or dtype is None:
        return array
    return np.broadcast_to(np.zeros((), dtype), shape)


def _check_unit_range(backend: Backend, name: str, array: Array) -> None:
    """Raise ValueError unless every value of ``array`` lies in [0, 1] (NaN does not), read on
    the device: two numbers cross to the host, not the array."""
    low, high = float(backend.xp.min(array)), float(backend.xp.max(array))
    if not (low >= 0.0 and high <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got [{low}, {high}]")
