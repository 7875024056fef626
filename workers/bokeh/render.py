"""``render_bokeh``: the lens blur's entry point: the contract, linear light, the composite.

``aperture`` N (3..64) draws an N-bladed polygon inscribed in the disc, one corner at
``rotation_deg`` counter-clockwise from the right. ``depth`` (0 = the subject's plane, 1 =
infinity) is read as the fraction of ``R_inf`` a pixel's blur reaches; it only matters where the
background shows. ``foreground`` is the subject's colour F (``workers.matting.estimate_foreground``,
estimated here when not given): where the matte is partial, what the photo shows beyond F is the
background behind, which the blur starts from. Given, it replaces ``rgb`` as F in the composite,
except that pixels with alpha = 1 always keep the bytes of ``rgb``; not given, F there is ``rgb``.
Bad inputs raise ``ValueError``. The output is deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_array, check_matte, f32
from workers.bokeh.background import blurred_background
from workers.bokeh.layers import mix
from workers.colour import DECODE, to_srgb
from workers.matting.foreground import estimate_foreground

_R_INF_FRACTION = 0.045  # blur radius at infinity for strength 100, as a fraction of the long side
# sqrt(subject area) / long side in a head-and-shoulders portrait (matplotlib's grace_hopper 0.70,
# skimage's astronaut 0.74): at that framing "subject" gives the radius "frame" gives
_SUBJECT_SHARE = 0.7
_MIN_SUBJECT = 0.01  # a subject under this share of the pixels (or none) is no size: use the frame
REFERENCES = ("frame", "subject")
_MAX_BLADES = 64  # beyond this a polygon is a disc, and the kernel's cost grows with N
_STRIP_ROWS = 64  # rows composited at a time


def render_bokeh(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    *,
    strength: float,
    strength_reference: str = "frame",
    aperture: int | None = None,
    rotation_deg: float = 0.0,
    foreground: NDArray[np.uint8] | None = None,
    depth: NDArray[np.float32] | None = None,
) -> NDArray[np.uint8]:
    """Blur the background of an sRGB photo behind its subject like a wide-open lens.

    ``rgb`` and ``foreground`` are H×W×3 uint8, ``alpha`` and ``depth`` H×W float32 in [0, 1];
    ``strength`` is 1..100, sized by ``strength_reference`` (``radius_at_infinity``). Returns
    H×W×3 uint8 sRGB.
    """
    _check_inputs(rgb, alpha, strength, aperture, rotation_deg, foreground, depth)
    rgb, alpha = np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)  # cv2 needs plain strides
    if foreground is not None:
        foreground = np.ascontiguousarray(foreground)
    r_inf = radius_at_infinity(alpha, strength, strength_reference)
    lin = f32(cv2.LUT(rgb, DECODE))
    # what the photo shows beyond F where the matte is partial is the background behind the subject
    front = estimate_foreground(rgb, alpha) if foreground is None else foreground
    background = blurred_background(lin, rgb, front, alpha, depth, r_inf, aperture, rotation_deg)
    return _composite(rgb, lin, foreground, background, alpha)


def radius_at_infinity(alpha: NDArray[np.float32], strength: float, reference: str) -> float:
    """The blur radius in pixels of a background at infinity: strength% of 4.5% of a length.

    ``reference`` ``"frame"``: the length is the long side of ``alpha`` (H×W float32);
    ``"subject"``: it is the square root of the subject's area (alpha >= 0.5) over 0.7, its share
    of the long side in a head-and-shoulders portrait, so crops of one sitter get one radius
    (exactly when the subject lies inside the frame; a frame edge that cuts it shrinks its area
    too). That length is between 1/7 and 10/7 of √(H·W): a subject under 1 % of the pixels, or
    an empty matte, is no size to go by and falls back to ``"frame"``.
    """
    if reference not in REFERENCES:
        raise ValueError(f"strength_reference must be one of {REFERENCES}, got {reference!r}")
    length = float(max(alpha.shape))
    if reference == "subject":
        area = int(np.count_nonzero(alpha >= 0.5))
        if area >= _MIN_SUBJECT * alpha.size:
            length = math.sqrt(area) / _SUBJECT_SHARE
    return float(strength) / 100.0 * _R_INF_FRACTION * length


def _composite(
    rgb: NDArray[np.uint8],
    lin: NDArray[np.float32],
    foreground: NDArray[np.uint8] | None,
    background: NDArray[np.float32],
    alpha: NDArray[np.float32],
) -> NDArray[np.uint8]:
    """alpha*F + (1-alpha)*B in sRGB bytes, F the foreground (else the photo), row strips at a time.

    In strips, the full-size temporaries of the blend and the encoding (hundreds of MB at 12 MP,
    page-faulted in on every call) stay small and in cache.
    """
    out = np.empty_like(rgb)
    for top in range(0, rgb.shape[0], _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        front = lin[rows] if foreground is None else f32(cv2.LUT(foreground[rows], DECODE))
        out[rows] = to_srgb(mix(front, background[rows], alpha[rows]))
        if foreground is not None:  # alpha = 1 keeps the input bytes even if F differs there
            cv2.copyTo(rgb[rows], (alpha[rows] >= 1.0).view(np.uint8), out[rows])
    return out


def _check_inputs(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    strength: float,
    aperture: int | None,
    rotation_deg: float,
    foreground: NDArray[np.uint8] | None,
    depth: NDArray[np.float32] | None,
) -> None:
    """Raise ValueError naming the first argument that breaks the contract."""
    shape = check_matte(rgb, alpha)
    if foreground is not None:
        check_array("foreground", foreground, np.uint8, (*shape, 3))
    if depth is not None:
        check_array("depth", depth, np.float32, shape, unit_range=True)
    if not _is_real(strength) or not 1.0 <= strength <= 100.0:
        raise ValueError(f"strength must be a number in [1, 100], got {strength!r}")
    blades_ok = isinstance(aperture, (int, np.integer)) and 3 <= aperture <= _MAX_BLADES
    if aperture is not None and (isinstance(aperture, bool) or not blades_ok):
        raise ValueError(
            f"aperture must be None (disc) or 3..{_MAX_BLADES} blades, got {aperture!r}"
        )
    if not _is_real(rotation_deg) or not math.isfinite(rotation_deg):
        raise ValueError(f"rotation_deg must be a finite number, got {rotation_deg!r}")


def _is_real(value: object) -> bool:
    """True for int, float and numpy scalars, but not bool (True is no strength)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
