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
   pixels, so on big photos at low strength its cells are wider than R/8; the highlights (max
   channel >= 230) are therefore left out of it and blurred apart by ``workers.highlights`` on
   the tiles that hold them, with the radius at least 8 px, so their discs keep sharp edges.
   Only while they are few (at most 2 % of the pixels): a bright sky or a white studio wall
   stays in the layers, where its soft edge does not show and its cost stays flat.
   Background at a radius the layer grid cannot resolve fades to the sharp image.
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

from workers.colour import DECODE, to_srgb
from workers.highlights import KERNEL_RADIUS, blur_highlights

_R_INF_FRACTION = 0.045  # blur radius at infinity for strength 100, as a fraction of the long side
_NEAR_DEPTH = 0.4  # proxy depth of background touching the subject
_FAR_DISTANCE = 0.25  # proxy: distance from the subject, per long side, that counts as infinity
_MAX_LAYERS = 4
_LAYER_PIXELS = 1.0e6  # per-layer cap: keeps cost flat; small radii on big photos go under 8 px
_MAX_BLADES = 64  # beyond this a polygon is a disc, and the kernel's cost grows with N
_SUBJECT_CUT = 4.0  # alpha >= 1/4 is subject enough that its colour must not leak into B
_FILL_CONFIDENCE = 0.02  # background share of the kernel below which the pyramid fill takes over
_HIGHLIGHT_START = 0.9  # sRGB level of the max channel where the highlight boost begins
_HIGHLIGHT_GAIN = 6.0  # linear gain of a fully clipped pixel: blown lights are ~2.5 stops hotter
_ramp = np.clip((np.arange(256) / 255.0 - _HIGHLIGHT_START) / (1 - _HIGHLIGHT_START), 0, 1)
_GAIN = (1 + (_HIGHLIGHT_GAIN - 1) * _ramp * _ramp * (3 - 2 * _ramp)).astype(np.float32)
_LIGHT = np.uint8(np.argmax(_ramp > 0))  # first byte of the highlights, blurred apart
_LIGHTS_APART_MAX = 0.02  # share of the photo's pixels beyond which lights stay in the layers
_BASE_GAIN = np.where(np.arange(256) < _LIGHT, _GAIN, 0).astype(np.float32)
_LIGHT_GAIN = _GAIN - _BASE_GAIN


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
    r_inf = float(strength) / 100.0 * _R_INF_FRACTION * max(alpha.shape)
    lin = _f32(cv2.LUT(rgb, DECODE))
    background = _blurred_background(lin, rgb, alpha, depth, r_inf, aperture, rotation_deg)
    front = lin if foreground is None else _f32(cv2.LUT(np.ascontiguousarray(foreground), DECODE))
    out = to_srgb(_mix(front, background, alpha))
    if foreground is not None:  # alpha = 1 keeps the input bytes even if F differs from them
        np.copyto(out, rgb, where=(alpha >= 1.0)[..., None])
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
    sizes = [_scaled_size(w, h, min(1.0, KERNEL_RADIUS / r, max_scale)) for r in radii]
    grid = sizes[0]  # the finest layer's grid; coarser layers are resampled onto it
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    peak = np.ascontiguousarray(hsv[..., 2], dtype=np.uint8)  # the max channel
    # Layers whose grid is coarser than R/8 leave their lights to the sharp tiles of
    # highlights.py, but only while the lights are few: a bright sky or a white studio wall is
    # not a scatter of point lights, shows no disc edge, and would make that path the slow one.
    apart = [KERNEL_RADIUS / r > max_scale for r in radii]
    lit = ((peak >= _LIGHT) & (weight > 0)).view(np.uint8) if any(apart) else None
    if lit is None or not 0 < np.count_nonzero(lit) <= _LIGHTS_APART_MAX * lit.size:
        apart = [False] * len(radii)
    lights = _lights(lin, peak, weight, lit) if lit is not None and any(apart) else None
    if lights is None:
        whole = base = _premultiplied_grid(lin, peak, weight, grid, _GAIN)
    else:
        base = _premultiplied_grid(lin, peak, weight, grid, _BASE_GAIN)
        whole = base
        if not all(apart):  # the same plus the lights, for the layers that keep them
            whole = base.copy()
            whole[..., :3] += _resize(lights, grid, cv2.INTER_AREA)
    fade = d_lo * r_inf < radii[0]  # some background is nearly in focus: fade to sharp there
    if depth is None:
        depth_grid = _proxy_depth(_resize(alpha, grid, cv2.INTER_AREA), w / grid[0], max(h, w))
        if lights is not None or fade:  # the full-size proxy only where something reads it
            depth = _resize(depth_grid, (w, h), cv2.INTER_LINEAR)
    else:
        depth_grid = _resize(np.ascontiguousarray(depth), grid, cv2.INTER_AREA)
    layers = [
        _normalised_blur(
            base if cut else whole,
            size,
            _aperture_kernel(r * size[0] / w, aperture, rotation_deg),
        )
        for r, size, cut in zip(radii, sizes, apart, strict=True)
    ]
    blended = _blend_layers(layers, depth_grid * r_inf, radii)
    background = _resize(_push_pull(blended), (w, h), cv2.INTER_LINEAR)
    if lights is not None and lit is not None and depth is not None:
        # the lights' share of conv(I*w, K), divided by the same conv(w, K)
        cover = np.maximum(_resize(blended[..., 3], (w, h), cv2.INTER_LINEAR), _FILL_CONFIDENCE)
        full_depth = depth  # a name of its own: the lambda below sees it narrowed to an array
        blur_highlights(
            background,
            cover,
            lights,
            lit,
            lambda rows, cols: full_depth[rows, cols] * np.float32(r_inf),
            radii,
            [k for k, cut in enumerate(apart) if cut],
            lambda radius: _aperture_kernel(radius, aperture, rotation_deg),
        )
    if fade and depth is not None:
        # only where the pixel is background: the sharp subject's edge must not return through B
        sharp = np.clip(depth * (-r_inf / radii[0]) + 1.0, 0.0, 1.0) * weight
        background = _mix(lin, background, sharp)
    return background


def _lights(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    weight: NDArray[np.float32],
    lit: NDArray[np.uint8],
) -> NDArray[np.float32]:
    """The highlights' boosted, background-weighted linear colour; zero off the lit pixels.

    Built once for every layer and tile, on the lit pixels only (a few percent at most); the
    zeros elsewhere are pages the tiles never touch unless lights are near.
    """
    lights = np.zeros_like(lin)
    where = np.nonzero(lit)
    boost = _LIGHT_GAIN[peak[where]] * weight[where]
    lights[where] = lin[where] * boost[:, None]
    return lights


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


def _resize(img: NDArray[np.float32], size: tuple[int, int], interp: int) -> NDArray[np.float32]:
    """Resize to (width, height), skipping the copy when the size already matches."""
    if (img.shape[1], img.shape[0]) == size:
        return img
    return _f32(cv2.resize(img, size, interpolation=interp))


def _premultiplied_grid(
    lin: NDArray[np.float32],
    peak: NDArray[np.uint8],
    weight: NDArray[np.float32],
    size: tuple[int, int],
    gain: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Return (colour * gain(max channel) * weight, weight) area-averaged to size, 4 channels."""
    boost = cv2.multiply(cv2.LUT(peak, gain), weight)
    colour = _f32(cv2.multiply(lin, cv2.cvtColor(boost, cv2.COLOR_GRAY2RGB)))
    colour = _resize(colour, size, cv2.INTER_AREA)
    return np.dstack([colour, _resize(weight, size, cv2.INTER_AREA)])


def _proxy_depth(
    alpha: NDArray[np.float32], px_per_cell: float, long_side: int
) -> NDArray[np.float32]:
    """Guess depth from the distance to the subject: near background blurs less than far."""
    outside = (alpha < 0.5).astype(np.uint8)
    if outside.all():
        return np.ones_like(alpha)
    dist = _f32(cv2.distanceTransform(outside, cv2.DIST_L2, 5)) * (px_per_cell / long_side)
    ramp = np.clip(dist / _FAR_DISTANCE, 0.0, 1.0)
    return _f32(_NEAR_DEPTH + (1.0 - _NEAR_DEPTH) * ramp)


def _aperture_kernel(radius: float, blades: int | None, rotation_deg: float) -> NDArray[np.float32]:
    """Anti-aliased disc or regular polygon of the given radius, normalised to sum 1."""
    n = math.ceil(radius + 0.5)
    y, x = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float64)
    y = -y  # rows grow downwards; flip so that rotation is counter-clockwise on screen
    if blades is None:
        dist = np.hypot(x, y) - radius
    else:  # polygon inscribed in the wide-open disc: distance is the largest edge overshoot
        angles = math.radians(rotation_deg) + (np.arange(blades) + 0.5) * 2 * math.pi / blades
        proj = x[..., None] * np.cos(angles) + y[..., None] * np.sin(angles)
        dist = proj.max(axis=-1) - radius * math.cos(math.pi / blades)
    kernel = np.clip(0.5 - dist, 0.0, 1.0)
    # cv2.filter2D correlates; flipping makes each light spread into the aperture's own shape
    return np.ascontiguousarray((kernel / kernel.sum())[::-1, ::-1], dtype=np.float32)


def _normalised_blur(
    prem: NDArray[np.float32], size: tuple[int, int], kernel: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Blur the premultiplied pair at the given size and bring it back to prem's grid."""
    small = _resize(prem, size, cv2.INTER_AREA)
    # zero padding: light from outside the frame is unknown, and the weight channel accounts for it
    blurred = _f32(cv2.filter2D(small, -1, kernel, borderType=cv2.BORDER_CONSTANT))
    return _resize(blurred, (prem.shape[1], prem.shape[0]), cv2.INTER_LINEAR)


def _blend_layers(
    layers: list[NDArray[np.float32]], radius: NDArray[np.float32], radii: list[float]
) -> NDArray[np.float32]:
    """Mix the layers per pixel by linear interpolation of the pixel's blur radius."""
    if len(layers) == 1:
        return layers[0]
    pos = (np.clip(radius, radii[0], radii[-1]) - radii[0]) / (radii[1] - radii[0])
    out = np.zeros_like(layers[0])
    for k, layer in enumerate(layers):
        hat = np.clip(1.0 - np.abs(pos - k), 0.0, 1.0)
        out += hat[..., None] * layer
    return out


def _push_pull(prem: NDArray[np.float32]) -> NDArray[np.float32]:
    """Divide out the weight, filling cells with too little background from coarser levels."""
    levels = [prem]
    while min(levels[-1].shape[:2]) > 1:
        top = levels[-1]
        half = ((top.shape[1] + 1) // 2, (top.shape[0] + 1) // 2)
        levels.append(_resize(top, half, cv2.INTER_AREA))
    sums = levels[-1].reshape(-1, 4).sum(axis=0, dtype=np.float64)
    mean = sums[:3] / sums[3] if sums[3] > 0 else np.zeros(3)
    colour = np.empty((*levels[-1].shape[:2], 3), np.float32)
    colour[...] = mean
    for level in reversed(levels):
        coarse = _resize(colour, (level.shape[1], level.shape[0]), cv2.INTER_LINEAR)
        weight = level[..., 3:]
        # own colour n/w where w >= tau, fading into the coarser estimate as w drops below tau
        colour = coarse + (level[..., :3] - coarse * weight) / np.maximum(weight, _FILL_CONFIDENCE)
    return colour


def _mix(
    front: NDArray[np.float32], back: NDArray[np.float32], amount: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Return amount*front + (1-amount)*back, exactly front at 1 and exactly back at 0."""
    # blendLinear divides by (w1 + w2 + eps); weights of 2**16 make that sum exactly 2**16 at the
    # end points, so alpha = 1 passes the input through bit for bit.
    w1 = amount * np.float32(65536.0)
    return _f32(cv2.blendLinear(front, back, w1, np.float32(65536.0) - w1))


def _f32(img: object) -> NDArray[np.float32]:
    """Type an OpenCV result as the float32 array it is (the stubs say a generic Mat)."""
    return np.asarray(img, dtype=np.float32)
