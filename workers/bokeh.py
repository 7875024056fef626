"""Optical lens blur ("bokeh") of a photo's background behind its matted subject.

Method, all in linear light:

1. Decode sRGB with the exact transfer curve and boost near-clipped highlights (max channel near
   255) so that a blown light carries the energy it really had and blurs into a bright disc.
2. Weight every pixel by how surely it is background, ``w = clip(1 - 4*alpha, 0, 1)``, and blur
   the premultiplied pair ``(I*w, w)`` with the aperture (an anti-aliased disc, or a polygon of N
   blades): ``B = conv(I*w, K) / conv(w, K)`` (normalised convolution). The subject's colour never
   enters ``B``, so there is no halo; where the kernel sees no background at all (inside a large
   subject) a push-pull pyramid fills ``B`` from the surrounding background.
3. Blur grows with distance behind the subject. The radius of a pixel is ``depth * R_inf``, where
   ``depth`` is the given map, or else a proxy from the distance to the subject: 0.4 right next to
   it, rising to 1 (infinity) at a quarter of the long side. A few layers of increasing radius are
   rendered and blended per pixel by linear interpolation on the radius.
4. Each layer is rendered at reduced resolution so that its kernel radius there is 8 px, then
   upsampled, so the cost stays flat as the blur grows. A layer never exceeds ``_LAYER_PIXELS``
   pixels, so on big photos at low strength its cells are wider than R/8 and a disc's edge
   would be as wide as a cell. Only point lights show that edge: bright spots (max channel >=
   230) smaller than their disc. Those layers therefore leave their point lights to
   ``workers.highlights``, which blurs them apart, a few at a time, with the radius at least
   8 px; each light spreads by its own depth. Holding texture only, such a layer is rendered
   with a kernel radius of 4 cells, on a grid up to four times smaller. Only while the point
   lights are few (at most 2 % of the pixels); larger bright areas (a sky, a white wall) stay
   in the layers, where a soft edge does not show. Background at a radius the layer grid cannot
   resolve fades to the sharp image.
5. Composite ``alpha*F + (1-alpha)*B`` and encode to sRGB with a 16-bit LUT; the decode/encode
   round trip is exact for every byte, so pixels with alpha = 1 come out unchanged.

Strength 1..100 sets the radius of a background at infinity, ``R_inf = strength/100 * 0.045 *
long_side``, so a batch of mixed resolutions looks alike. On a full-frame camera, 100 is about an
85 mm lens at f/1.2 focused at 2 m, 30 about 50 mm at f/1.8, and 10 about 35 mm at f/2.

``aperture`` N (3..64) draws an N-bladed polygon inscribed in the disc, one corner at
``rotation_deg`` counter-clockwise from the right. ``depth`` (0 = the subject's plane, 1 =
infinity) is read as the fraction of ``R_inf`` a pixel's blur reaches; it only matters where the
background shows. ``foreground`` replaces ``rgb`` as F in the composite, except that pixels with
alpha = 1 always keep the bytes of ``rgb``. Bad inputs raise ``ValueError``. The output is
deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import math
import numbers

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.aperture import aperture_kernel
from workers.colour import DECODE, to_srgb
from workers.highlights import (
    KERNEL_RADIUS,
    Enlarge,
    Lights,
    area_grid,
    blur_highlights,
    gather_lights,
    point_lights,
)
from workers.layers import (
    FILL_CONFIDENCE,
    blend_layers,
    f32,
    mix,
    normalised_blur,
    push_pull,
    resize,
)

_R_INF_FRACTION = 0.045  # blur radius at infinity for strength 100, as a fraction of the long side
_NEAR_DEPTH = 0.4  # proxy depth of background touching the subject
_FAR_DISTANCE = 0.25  # proxy: distance from the subject, per long side, that counts as infinity
_MAX_LAYERS = 4
_TEXTURE_RADIUS = 4.0  # kernel radius in cells of a layer without lights: blur within 3 % of R
_LAYER_PIXELS = 1.0e6  # per-layer cap: keeps cost flat; small radii on big photos go under 8 px
_MAX_BLADES = 64  # beyond this a polygon is a disc, and the kernel's cost grows with N
_SUBJECT_CUT = 4.0  # alpha >= 1/4 is subject enough that its colour must not leak into B
_HIGHLIGHT_START = 0.9  # sRGB level of the max channel where the highlight boost begins
_HIGHLIGHT_GAIN = 6.0  # linear gain of a fully clipped pixel: blown lights are ~2.5 stops hotter
_ramp = np.clip((np.arange(256) / 255.0 - _HIGHLIGHT_START) / (1 - _HIGHLIGHT_START), 0, 1)
_GAIN = (1 + (_HIGHLIGHT_GAIN - 1) * _ramp * _ramp * (3 - 2 * _ramp)).astype(np.float32)
_LIGHT = np.uint8(np.argmax(_ramp > 0))  # first byte of the highlights, blurred apart
_STRIP_ROWS = 64  # rows composited at a time
_LIGHTS_APART_MAX = 0.02  # share of the photo's pixels beyond which lights stay in the layers


def render_bokeh(
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    *,
    strength: float,
    aperture: int | None = None,
    rotation_deg: float = 0.0,
    foreground: NDArray[np.uint8] | None = None,
    depth: NDArray[np.float32] | None = None,
) -> NDArray[np.uint8]:
    """Blur the background of an sRGB photo behind its subject like a wide-open lens."""
    _check_inputs(rgb, alpha, strength, aperture, rotation_deg, foreground, depth)
    rgb, alpha = np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)  # cv2 needs plain strides
    if foreground is not None:
        foreground = np.ascontiguousarray(foreground)
    r_inf = float(strength) / 100.0 * _R_INF_FRACTION * max(alpha.shape)
    lin = f32(cv2.LUT(rgb, DECODE))
    background = _blurred_background(lin, rgb, alpha, depth, r_inf, aperture, rotation_deg)
    return _composite(rgb, lin, foreground, background, alpha)


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


def _blurred_background(
    lin: NDArray[np.float32],
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.float32],
    depth: NDArray[np.float32] | None,
    r_inf: float,
    aperture: int | None,
    rotation_deg: float,
) -> NDArray[np.float32]:
    """Return the full-size linear background B, blurred by depth, with the subject removed."""
    h, w = alpha.shape
    weight = np.clip(1.0 - _SUBJECT_CUT * alpha, 0.0, 1.0)
    if not weight.any():  # no background anywhere: blur the whole picture rather than nothing
        weight = np.ones_like(alpha)
    max_scale = min(1.0, math.sqrt(_LAYER_PIXELS / (h * w)))
    d_lo, d_hi = _depth_range(alpha, depth)
    # radii finer than one cell of the coarsest allowed grid cannot be rendered there
    radii = _layer_radii(d_lo * r_inf, d_hi * r_inf, max(1.0, 1.0 / max_scale))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    peak = np.ascontiguousarray(hsv[..., 2], dtype=np.uint8)  # the max channel
    apart, lights = _lights_apart(lin, peak, weight, radii, max_scale)
    # A layer whose lights are apart holds texture only, which shows no disc edge: it is rendered
    # with a kernel of _TEXTURE_RADIUS cells, on a grid up to four times smaller.
    sizes = [
        _scaled_size(w, h, min(1.0, (_TEXTURE_RADIUS if cut else KERNEL_RADIUS) / r, max_scale))
        for r, cut in zip(radii, apart, strict=True)
    ]
    grid = max(sizes)  # the finest layer's grid; the others are resampled onto it
    whole = base = _premultiplied_grid(lin, peak, weight, grid, _GAIN)
    if lights is not None:  # the layers without them start from the rest of the background
        base = whole.copy()
        base[..., :3] -= area_grid(lights, grid)
    fade = d_lo * r_inf < radii[0]  # some background is nearly in focus: fade to sharp there
    given = depth
    if depth is None:
        depth_grid = _proxy_depth(resize(alpha, grid, cv2.INTER_AREA), w / grid[0], max(h, w))
        if fade:  # the full-size proxy only where something reads it
            depth = resize(depth_grid, (w, h), cv2.INTER_LINEAR)
    else:
        depth_grid = resize(np.ascontiguousarray(depth), grid, cv2.INTER_AREA)
    layers = [
        normalised_blur(
            base if cut else whole,
            size,
            aperture_kernel(r * size[0] / w, aperture, rotation_deg),
        )
        for r, size, cut in zip(radii, sizes, apart, strict=True)
    ]
    blended = blend_layers(layers, depth_grid * r_inf, radii)
    background = resize(push_pull(blended), (w, h), cv2.INTER_LINEAR)
    if lights is not None:
        if given is None:  # each light's radius, from the depth where it is
            depth_at = Enlarge(depth_grid.shape, (h, w)).at(depth_grid, lights.ys, lights.xs)
        else:
            depth_at = given[lights.ys, lights.xs]
        # the lights' share of conv(I*w, K), divided by the same conv(w, K)
        blur_highlights(
            background,
            np.maximum(blended[..., 3], FILL_CONFIDENCE),
            lights,
            depth_at * np.float32(r_inf),
            radii,
            [k for k, cut in enumerate(apart) if cut],
            lambda r: aperture_kernel(r, aperture, rotation_deg),
        )
    if fade and depth is not None:
        # only where the pixel is background: the sharp subject's edge must not return through B
        sharp = np.clip(depth * (-r_inf / radii[0]) + 1.0, 0.0, 1.0) * weight
        background = mix(lin, background, sharp)
    return background


def _lights_apart(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    weight: NDArray[np.float32],
    radii: list[float],
    max_scale: float,
) -> tuple[list[bool], Lights | None]:
    """Which layers leave their point lights to ``workers.highlights``, and those lights.

    The layers whose grid is coarser than R/8, while the lights are few: a night sky full of
    them would make that path the slow one. Lights wider than the widest such disc are areas
    that draw no disc, and stay in the layers.
    """
    apart = [max_scale < 1.0 and KERNEL_RADIUS / r > max_scale for r in radii]
    if not any(apart):
        return apart, None
    widest = max(r for r, cut in zip(radii, apart, strict=True) if cut)
    lit = point_lights(((peak >= _LIGHT) & (weight > 0)).view(np.uint8), 2 * widest)
    if not 0 < np.count_nonzero(lit) <= _LIGHTS_APART_MAX * lit.size:
        return [False] * len(radii), None
    lights = gather_lights(
        lit, lambda ys, xs: lin[ys, xs] * (_GAIN[peak[ys, xs]] * weight[ys, xs])[:, None]
    )
    return apart, lights


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
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and min(rgb.shape[:2]) >= 1):
        raise ValueError("rgb must be a non-empty H x W x 3 uint8 array")
    shape = rgb.shape[:2]
    _check_array("rgb", rgb, np.uint8, (*shape, 3))
    _check_array("alpha", alpha, np.float32, shape, unit_range=True)
    if foreground is not None:
        _check_array("foreground", foreground, np.uint8, (*shape, 3))
    if depth is not None:
        _check_array("depth", depth, np.float32, shape, unit_range=True)
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


def _check_array(
    name: str, arr: object, dtype: type, shape: tuple[int, ...], unit_range: bool = False
) -> None:
    """Raise ValueError unless arr has this dtype and shape (and values in [0, 1] if asked)."""
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
        got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{name} must be a {np.dtype(dtype)} array of shape {shape}, got {got}")
    if unit_range and not (arr.min() >= 0.0 and arr.max() <= 1.0):  # NaN fails this too
        raise ValueError(f"{name} must lie in [0, 1], got [{arr.min()}, {arr.max()}]")


def _depth_range(
    alpha: NDArray[np.float32], depth: NDArray[np.float32] | None
) -> tuple[float, float]:
    """Nearest and farthest depth of the background (the proxy spans its fixed range)."""
    if depth is None:
        return _NEAR_DEPTH, 1.0
    behind = alpha < 0.5  # the subject's own depth must not force a useless in-focus layer
    nearest = float(np.min(depth, where=behind, initial=1.0))
    return nearest, float(np.max(depth, where=behind, initial=0.0))


def _layer_radii(r_lo: float, r_hi: float, floor: float) -> list[float]:
    """Radii of the blurred layers: evenly spaced, about a pixel apart at least."""
    lo = max(r_lo, floor)
    hi = max(r_hi, lo)
    count = 1 if hi - lo < 0.5 else min(_MAX_LAYERS, 1 + math.ceil(hi - lo))
    return [float(r) for r in np.linspace(lo, hi, count)]


def _scaled_size(w: int, h: int, scale: float) -> tuple[int, int]:
    """Return the (width, height) of a w x h image scaled by scale, at least 1 x 1."""
    return max(1, round(w * scale)), max(1, round(h * scale))


def _premultiplied_grid(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    weight: NDArray[np.float32],
    size: tuple[int, int],
    gain: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Return (colour * gain(max channel) * weight, weight) area-averaged to size, 4 channels."""
    boost = cv2.multiply(cv2.LUT(peak, gain), weight)
    colour = f32(cv2.multiply(lin, cv2.cvtColor(boost, cv2.COLOR_GRAY2RGB)))
    colour = resize(colour, size, cv2.INTER_AREA)
    return np.dstack([colour, resize(weight, size, cv2.INTER_AREA)])


def _proxy_depth(
    alpha: NDArray[np.float32], px_per_cell: float, long_side: int
) -> NDArray[np.float32]:
    """Guess depth from the distance to the subject: near background blurs less than far."""
    outside = (alpha < 0.5).astype(np.uint8)
    if outside.all():
        return np.ones_like(alpha)
    dist = f32(cv2.distanceTransform(outside, cv2.DIST_L2, 5)) * (px_per_cell / long_side)
    ramp = np.clip(dist / _FAR_DISTANCE, 0.0, 1.0)
    return f32(_NEAR_DEPTH + (1.0 - _NEAR_DEPTH) * ramp)
