"""Tests for workers.bokeh: contract, pass-through, lens optics, leaks, scale and depth."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.bokeh import render_bokeh

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


def _linear(srgb: U8) -> NDArray[np.float64]:
    """Decode sRGB bytes with the exact transfer curve (independent of the module's LUT)."""
    v = srgb.astype(np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb(lin: NDArray[np.float64]) -> U8:
    lin = np.clip(lin, 0.0, 1.0)
    v = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(v * 255.0).astype(np.uint8)


def _r_inf(strength: float, long_side: int) -> float:
    """The documented mapping from strength to the blur radius of a background at infinity."""
    return strength / 100.0 * 0.045 * long_side


def _texture(h: int, w: int, seed: int = 0, cell: int = 1) -> U8:
    """Random RGB texture, upscaled from cells of the given size (1 = pixel noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 200, (max(1, h // cell), max(1, w // cell), 3), dtype=np.uint8)
    interp = cv2.INTER_CUBIC if cell > 1 else cv2.INTER_NEAREST
    return np.asarray(cv2.resize(small, (w, h), interpolation=interp), dtype=np.uint8)


def _lap_var(img: U8) -> float:
    """Variance of the Laplacian of the grey image: high for sharp texture, low for blur."""
    grey = _linear(img).mean(axis=2)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _disc_matte(h: int, w: int, cx: float, cy: float, radius: float, soft: float = 0.0) -> F32:
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - cx, yy - cy)
    if soft == 0.0:
        return np.asarray(dist <= radius, dtype=np.float32)
    return np.asarray(np.clip((radius - dist) / soft + 0.5, 0.0, 1.0), dtype=np.float32)


def _fwhm(profile: NDArray[np.float64], centre: int) -> float:
    """Full width at half the central plateau, with sub-pixel linear interpolation."""
    half = profile[centre] / 2.0

    def crossing(step: int) -> float:
        i = centre
        while profile[i + step] >= half:
            i += step
        frac = (profile[i] - half) / (profile[i] - profile[i + step])
        return float(i + step * frac)

    return crossing(1) - crossing(-1)


# --- contract ------------------------------------------------------------------------------------

RGB = np.zeros((8, 10, 3), np.uint8)
ALPHA = np.zeros((8, 10), np.float32)


@pytest.mark.parametrize(
    "changes",
    [
        {"rgb": np.zeros((8, 10, 3), np.float32)},
        {"rgb": np.zeros((8, 10), np.uint8)},
        {"rgb": np.zeros((8, 10, 4), np.uint8)},
        {"rgb": np.zeros((0, 10, 3), np.uint8), "alpha": np.zeros((0, 10), np.float32)},
        {"rgb": [[0, 0, 0]]},
        {"alpha": np.zeros((8, 10), np.float64)},
        {"alpha": np.zeros((10, 8), np.float32)},
        {"alpha": np.zeros((8, 10, 1), np.float32)},
        {"alpha": np.full((8, 10), 1.5, np.float32)},
        {"alpha": np.full((8, 10), -0.1, np.float32)},
        {"alpha": np.full((8, 10), np.nan, np.float32)},
        {"strength": 0.5},
        {"strength": 101},
        {"strength": float("nan")},
        {"strength": "50"},
        {"strength": True},
        {"aperture": 2},
        {"aperture": 0},
        {"aperture": 65},
        {"aperture": 6.0},
        {"aperture": True},
        {"rotation_deg": float("inf")},
        {"rotation_deg": "0"},
        {"foreground": np.zeros((8, 10, 3), np.float32)},
        {"foreground": np.zeros((8, 9, 3), np.uint8)},
        {"depth": np.zeros((8, 10), np.float64)},
        {"depth": np.zeros((9, 10), np.float32)},
        {"depth": np.full((8, 10), 2.0, np.float32)},
        {"depth": np.full((8, 10), np.nan, np.float32)},
    ],
)
def test_rejects_bad_inputs(changes: dict[str, Any]) -> None:
    args: dict[str, Any] = {"rgb": RGB, "alpha": ALPHA, "strength": 50}
    args.update(changes)
    rgb, alpha = args.pop("rgb"), args.pop("alpha")
    with pytest.raises(ValueError):
        render_bokeh(rgb, alpha, **args)


def test_accepts_edge_values_and_returns_uint8_image() -> None:
    rgb = _texture(7, 5, seed=1)
    numpy_scalars: dict[str, Any] = {"strength": np.float32(1.0), "aperture": np.int64(3)}
    alpha, depth = np.ones((7, 5), np.float32), np.zeros((7, 5), np.float32)
    out = render_bokeh(rgb, alpha, depth=depth, **numpy_scalars)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    one = render_bokeh(rgb[:1, :1], np.zeros((1, 1), np.float32), strength=100)
    assert one.shape == (1, 1, 3)


def test_accepts_strided_views_like_copies() -> None:
    rgb = _texture(40, 60, seed=13)
    alpha = _disc_matte(40, 60, 30, 20, 10, soft=3.0)
    depth = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1))
    views = render_bokeh(
        rgb[:, ::-1], alpha[:, ::-1], strength=80, foreground=rgb[::-1], depth=depth[:, ::-1]
    )
    copies = render_bokeh(
        rgb[:, ::-1].copy(),
        alpha[:, ::-1].copy(),
        strength=80,
        foreground=rgb[::-1].copy(),
        depth=depth[:, ::-1].copy(),
    )
    np.testing.assert_array_equal(views, copies)


# --- pass-through --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strength": 100},
        {"strength": 3, "aperture": 5, "rotation_deg": 17.0},
        {"strength": 60, "depth": np.linspace(0, 1, 256 * 64, dtype=np.float32).reshape(64, 256)},
    ],
)
def test_opaque_pixels_keep_their_exact_bytes(kwargs: dict[str, Any]) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 256, 3), dtype=np.uint8)
    rgb[20:40] = np.arange(256, dtype=np.uint8)[None, :, None]  # every byte value, opaque
    alpha = rng.random((64, 256), dtype=np.float32)
    alpha[20:40] = 1.0
    alpha[:, :30] = 0.0
    out = render_bokeh(rgb, alpha, **kwargs)
    opaque = alpha == 1.0
    np.testing.assert_array_equal(out[opaque], rgb[opaque])
    assert not np.array_equal(out[~opaque], rgb[~opaque])  # the rest really was rendered


def test_opaque_pixels_keep_input_bytes_even_with_a_different_foreground() -> None:
    rgb = _texture(64, 64, seed=4)
    alpha = _disc_matte(64, 64, 32, 32, 20, soft=4.0)
    foreground = np.full_like(rgb, 77)
    out = render_bokeh(rgb, alpha, strength=50, foreground=foreground)
    opaque = alpha == 1.0
    np.testing.assert_array_equal(out[opaque], rgb[opaque])
    band = (alpha > 0.5) & (alpha < 1.0)  # the estimated foreground is what gets composited
    expected = _linear(foreground[band]) * alpha[band, None]
    assert np.all(_linear(out[band]) >= expected - 0.01)


def test_in_focus_background_is_left_sharp() -> None:
    rgb = _texture(96, 128, seed=5)
    alpha = np.zeros((96, 128), np.float32)
    out = render_bokeh(rgb, alpha, strength=100, depth=np.zeros_like(alpha))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("strength", [1, 5, 30, 100])
@pytest.mark.parametrize("kwargs", [{}, {"aperture": 5, "rotation_deg": 12.0}, {"depth": "ramp"}])
def test_flat_background_keeps_its_colour_up_to_the_subject(
    strength: float, kwargs: dict[str, Any]
) -> None:
    h, w = 120, 160
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[...] = (40, 90, 200)
    alpha = _disc_matte(h, w, 60, 70, 30)
    rgb[alpha > 0] = (250, 20, 20)
    if kwargs.get("depth") == "ramp":
        kwargs = {"depth": np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))}
    out = render_bokeh(rgb, alpha, strength=strength, **kwargs)
    # normalised convolution: no darkening at the frame or next to the subject, no red fringe
    background = out[alpha == 0].astype(int)
    assert np.abs(background - (40, 90, 200)).max() <= 1


# --- optics --------------------------------------------------------------------------------------


def _point_light(size: int, dot: int, level: int = 255) -> U8:
    rgb = np.zeros((size, size, 3), np.uint8)
    c, h = size // 2, dot // 2
    rgb[c - h : c + h + 1, c - h : c + h + 1] = level
    return rgb


def _render_light(size: int, dot: int, strength: float, **kwargs: Any) -> NDArray[np.float64]:
    """Render a point light with the background at infinity; return the linear green channel."""
    rgb = _point_light(size, dot)
    flat = np.zeros((size, size), np.float32)
    out = render_bokeh(rgb, flat, strength=strength, depth=np.ones_like(flat), **kwargs)
    return _linear(out)[..., 1]


@pytest.mark.parametrize(
    ("size", "strength", "dot", "tolerance"),
    [
        # R = 8 is rendered at full resolution: the anti-aliased disc is 2R wide at half height
        # (2R + 1 pixels are lit), so +-2 px covers that and interpolation of the crossing.
        (400, 8 / (0.045 * 4), 3, 2.0),
        # R = 54: the 9 px light is drawn on cells of 2 px and enlarged bilinearly, which spreads
        # the edge (already 9 px wide: the light's own width) symmetrically, so the half-height
        # crossing stays put.
        (1200, 100.0, 9, 2.0),
    ],
)
def test_point_light_becomes_a_flat_disc_of_the_mapped_radius(
    size: int, strength: float, dot: int, tolerance: float
) -> None:
    radius = _r_inf(strength, size)
    light = _render_light(size, dot, strength)
    c = size // 2
    row, col = light[c], light[:, c]
    for profile in (row, col):
        assert abs(_fwhm(profile, c) - (2 * radius + 1)) <= tolerance
    yy, xx = np.mgrid[0:size, 0:size]
    inner = light[np.hypot(xx - c, yy - c) < 0.7 * radius]
    assert inner.std() / inner.mean() < 0.03  # a flat disc, not a Gaussian bump
    # energy is conserved: the disc holds all of the clipped light times the boost (4..8)
    assert 4.0 * dot * dot <= light.sum() <= 8.0 * dot * dot


@pytest.mark.parametrize(("rotation", "flat_axis"), [(0.0, "col"), (30.0, "row"), (90.0, "row")])
def test_six_blades_give_a_hexagon(rotation: float, flat_axis: str) -> None:
    size, strength = 400, 8 / (0.045 * 4)  # R = 8, full resolution
    light = _render_light(size, 1, strength, aperture=6, rotation_deg=rotation)
    c = size // 2
    across = {"row": _fwhm(light[c], c), "col": _fwhm(light[:, c], c)}
    corner = across["col" if flat_axis == "row" else "row"]
    # a regular hexagon is cos(30 deg) as wide between flat sides as between corners
    assert across[flat_axis] / corner == pytest.approx(math.cos(math.radians(30)), abs=0.04)
    disc = _render_light(size, 1, strength)
    assert _fwhm(disc[c], c) / _fwhm(disc[:, c], c) == pytest.approx(1.0, abs=0.04)


def test_clipped_highlights_are_boosted_into_bright_discs() -> None:
    size, strength = 400, 8 / (0.045 * 4)
    flat = np.zeros((size, size), np.float32)
    depth = np.ones_like(flat)
    c = size // 2
    clipped = _linear(
        render_bokeh(_point_light(size, 3, 255), flat, strength=strength, depth=depth)
    )
    dim = _linear(render_bokeh(_point_light(size, 3, 180), flat, strength=strength, depth=depth))
    ratio = clipped[c, c, 1] / dim[c, c, 1]
    assert ratio > 3.0 * _linear(np.array([255]))[0] / _linear(np.array([180]))[0]


# --- no halo -------------------------------------------------------------------------------------


def _leak_scene(size: int, soft: float) -> tuple[U8, F32, float]:
    rng = np.random.default_rng(11)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[..., 0] = 20  # the background's red is constant, so any excess is leaked subject colour
    rgb[..., 1] = rng.integers(0, 80, (size, size))
    rgb[..., 2] = cv2.resize(rng.integers(60, 200, (40, 40), dtype=np.uint8), (size, size))
    radius = size * 0.2
    alpha = _disc_matte(size, size, size / 2, size / 2, radius, soft)
    subject = alpha > 0
    rgb[subject] = np.round(
        alpha[subject, None] * [255, 0, 0] + (1 - alpha[subject, None]) * rgb[subject]
    ).astype(np.uint8)
    return rgb, alpha, radius


@pytest.mark.parametrize("soft", [0.0, 3.0])
def test_subject_colour_does_not_leak_into_the_background(soft: float) -> None:
    size, strength = 400, 60.0
    rgb, alpha, radius = _leak_scene(size, soft)
    r = _r_inf(strength, size)
    out = render_bokeh(rgb, alpha, strength=strength, depth=np.ones_like(alpha))
    yy, xx = np.mgrid[0:size, 0:size]
    dist = np.hypot(xx - size / 2, yy - size / 2)
    ring = (alpha == 0) & (dist <= radius + soft + r)
    ours = out[ring, 0].mean() / 255 - 20 / 255
    # naive: blur the whole picture (linear light, same spread), then composite
    lin = _linear(rgb).astype(np.float32)
    blurred = cv2.GaussianBlur(lin, (0, 0), r / 2)
    naive_lin = alpha[..., None] * lin + (1 - alpha[..., None]) * blurred
    naive = _srgb(naive_lin)[ring, 0].mean() / 255 - 20 / 255
    assert naive > 10 / 255  # the scene does show a halo when colour is not masked
    assert ours < 1 / 255
    assert ours < naive / 20


def test_background_hidden_by_a_large_subject_is_filled_from_background() -> None:
    size = 256
    rng = np.random.default_rng(12)
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[..., 2] = rng.integers(150, 200, (size, size))
    # a soft edge 60 px wide: where alpha > 0.3 the kernel (R = 11.5) sees no background at all
    alpha = _disc_matte(size, size, size / 2, size / 2, size * 0.3, soft=60.0)
    a = alpha[..., None]
    rgb = np.round(a * [255, 0, 0] + (1 - a) * rgb).astype(np.uint8)  # red subject, soft edge
    out = render_bokeh(rgb, alpha, strength=100, depth=np.ones_like(alpha))
    band = (alpha > 0.3) & (alpha < 0.7)
    a = alpha[band, None]
    back = (_linear(out[band]) - a * _linear(rgb[band])) / (1 - a)  # what was composited behind
    blue = _linear(np.array([150]))[0]
    assert np.all(back[:, 0] < 0.05)  # not the subject's red
    assert np.all(back[:, 2] > 0.8 * blue)  # not black: filled with the background's blue


# --- uncertain mattes ----------------------------------------------------------------------------


def _dark_square(a: float) -> tuple[U8, F32]:
    """A dark 600 x 600 square (~35) given a constant matte of a, in a light scene (~205)."""
    h, w = 800, 1200
    rng = np.random.default_rng(13)
    rgb = np.clip(205 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    rgb[100:700, 300:900] = np.clip(35 + rng.normal(0, 3, (600, 600, 3)), 0, 255).astype(np.uint8)
    alpha = np.zeros((h, w), np.float32)
    alpha[100:700, 300:900] = a
    return rgb, alpha


@pytest.mark.parametrize("strength", [5, 30, 100])
@pytest.mark.parametrize("a", [0.3, 0.6])
def test_a_wrong_matte_does_not_repaint_what_it_covers(a: float, strength: float) -> None:
    """What shows beyond F under a partial matte is the background behind it: blurred, it keeps
    its colour. Only within the blur's reach of the square's edge does the light scene around it
    mix in, as a lens mixes the edge of any dark area (fill from the scene made it ~164)."""
    rgb, alpha = _dark_square(a)
    out = render_bokeh(rgb, alpha, strength=strength)
    reach = math.ceil(_r_inf(strength, 1200))
    inner = (slice(100 + reach, 700 - reach), slice(300 + reach, 900 - reach))
    assert abs(out[inner].mean() - rgb[inner].mean()) <= 4.0


# --- highlight boost -----------------------------------------------------------------------------


def _wall(level: int, noise: float) -> tuple[U8, F32]:
    """A plain wall (1200 x 800) behind a dark elliptical subject."""
    h, w = 800, 1200
    rng = np.random.default_rng(14)
    rgb = np.clip(level + rng.normal(0, noise, (h, w, 3)), 0, 255).round().astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.asarray(np.hypot((xx - 600) / 200, (yy - 500) / 300) <= 1, np.float32)
    rgb[alpha == 1] = 60
    return rgb, alpha


@pytest.mark.parametrize("strength", [5, 30, 60, 100])
@pytest.mark.parametrize(("level", "noise"), [(205, 18.0), (235, 0.0), (245, 0.0), (250, 0.0)])
def test_a_light_wall_keeps_its_brightness(level: int, noise: float, strength: float) -> None:
    """A lens does not brighten an evenly lit wall: only clipped small lights are boosted."""
    rgb, alpha = _wall(level, noise)
    out = render_bokeh(rgb, alpha, strength=strength)
    background = alpha == 0
    assert abs(out[background].mean() - rgb[background].mean()) <= 2.0
    if noise:  # texture survives as blur, not as white: no more clipped pixels than before
        assert out[background].std() > 0
        assert np.count_nonzero(out == 255) <= np.count_nonzero(rgb == 255)


@pytest.mark.parametrize("level", [120, 235])
def test_a_small_clipped_light_on_a_wall_is_boosted_but_the_wall_is_not(level: int) -> None:
    """On a mid-grey wall a clipped light keeps most of its boost; on a wall nearly as bright
    as itself it hid little energy, and keeps about its own."""
    rgb, alpha = _wall(level, 0.0)
    rgb[100:105, 100:105] = 255
    out = _linear(render_bokeh(rgb, alpha, strength=30))
    wall = _linear(np.array([level]))[0]
    excess = (out[30:180, 30:180, 1] - wall).sum() / (25 * (1.0 - wall))  # its energy over the wall
    assert excess > (4.0 if level < 200 else 0.95)
    assert abs(_srgb(out)[400:700, 900:1150].mean() - level) <= 1.0


# --- blur amount ---------------------------------------------------------------------------------


def test_blur_grows_with_strength() -> None:
    rgb = _texture(256, 256, seed=2)
    alpha = np.zeros((256, 256), np.float32)
    sharpness = [_lap_var(render_bokeh(rgb, alpha, strength=s)) for s in (5, 20, 60)]
    assert _lap_var(rgb) > 1.5 * sharpness[0]
    assert sharpness[0] > 1.5 * sharpness[1] > 1.5 * 1.5 * sharpness[2]


def test_far_background_is_blurrier_than_near_background() -> None:
    rgb = _texture(256, 512, seed=6)
    alpha = np.zeros((256, 512), np.float32)
    depth = np.full((256, 512), 0.2, np.float32)
    depth[:, 256:] = 1.0
    out = render_bokeh(rgb, alpha, strength=50, depth=depth)
    margin = math.ceil(_r_inf(50, 512)) + 2
    near, far = out[:, : 256 - margin], out[:, 256 + margin :]
    assert _lap_var(near) > 3.0 * _lap_var(far)


def test_without_depth_background_next_to_the_subject_blurs_less() -> None:
    h, w = 256, 768
    rgb = _texture(h, w, seed=8)
    alpha = np.zeros((h, w), np.float32)
    alpha[:, :64] = 1.0  # subject along the left edge
    grey = _linear(render_bokeh(rgb, alpha, strength=10)).mean(axis=2)
    # pixel noise blurred over radius r keeps a contrast of about 1/r
    near, far = grey[:, 66:82].std(), grey[:, w - 128 :].std()
    assert near > 1.5 * far


# --- stability -----------------------------------------------------------------------------------


def test_rendering_is_deterministic() -> None:
    rgb = _texture(300, 400, seed=9, cell=8)
    alpha = _disc_matte(300, 400, 200, 160, 70, soft=5.0)
    depth = np.tile(np.linspace(0, 1, 400, dtype=np.float32), (300, 1))
    kwargs: dict[str, Any] = {"strength": 70, "aperture": 7, "rotation_deg": 10.0, "depth": depth}
    first = render_bokeh(rgb, alpha, foreground=rgb[::-1].copy(), **kwargs)
    second = render_bokeh(rgb.copy(), alpha.copy(), foreground=rgb[::-1].copy(), **kwargs)
    assert first.tobytes() == second.tobytes()


def _downscale_linear(rgb: U8, factor: int) -> U8:
    lin = _linear(rgb).astype(np.float32)
    size = (rgb.shape[1] // factor, rgb.shape[0] // factor)
    return _srgb(cv2.resize(lin, size, interpolation=cv2.INTER_AREA).astype(np.float64))


def _psnr(a: U8, b: U8) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_same_look_at_any_resolution() -> None:
    h, w, factor = 3072, 4096, 4
    rng = np.random.default_rng(10)
    field = rng.integers(20, 220, (12, 16, 3), dtype=np.uint8)
    big = np.asarray(cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    for _ in range(40):  # clipped lights aligned to the 4x4 cells, so both scales clip alike
        y, x = rng.integers(0, h // 8) * 8, rng.integers(0, w // 8) * 8
        big[y : y + 8, x : x + 8] = 255
    alpha_big = _disc_matte(h, w, w * 0.4, h * 0.55, h * 0.3, soft=16.0)
    small = _downscale_linear(big, factor)
    alpha_small = np.asarray(
        cv2.resize(alpha_big, (w // factor, h // factor), interpolation=cv2.INTER_AREA), np.float32
    )
    out_big = render_bokeh(big, alpha_big, strength=40)
    out_small = render_bokeh(small, alpha_small, strength=40)
    assert _psnr(_downscale_linear(out_big, factor), out_small) >= 35.0


@pytest.mark.parametrize(
    ("size", "strength", "dot"),
    [(400, 8 / (0.045 * 4), 5), (1200, 60.0, 21), (1200, 100.0, 31), (2400, 100.0, 41)],
)
def test_an_unboosted_light_keeps_its_energy(size: int, strength: float, dot: int) -> None:
    """Blur moves light, it does not make or lose it: within 1 %, full or reduced resolution."""
    rgb = np.zeros((size, size, 3), np.uint8)
    c, h = size // 2, dot // 2
    rgb[c - h : c + h + 1, c - h : c + h + 1] = 200  # below the highlight boost
    flat = np.zeros((size, size), np.float32)
    out = render_bokeh(rgb, flat, strength=strength, depth=np.ones_like(flat))
    assert _linear(out).sum() == pytest.approx(_linear(rgb).sum(), rel=0.01)


def _edge_width(profile: NDArray[np.float64]) -> float:
    """Distance from 90 % to 10 % of the plateau on a profile starting at a disc's centre."""

    def crossing(level: float) -> float:
        i = int(np.nonzero(profile < level * profile[0])[0][0])
        return float(i - 1 + (profile[i - 1] - level * profile[0]) / (profile[i - 1] - profile[i]))

    return crossing(0.1) - crossing(0.9)


@pytest.mark.parametrize("strength", [5.0, 10.0])
def test_a_light_keeps_a_sharp_disc_edge_on_a_big_photo(strength: float) -> None:
    """12 MP at low strength: layer grids are capped (cells of 3.5 px), yet a point light's disc,
    drawn apart at full resolution, has a rim under 2 px from 90 % to 10 %."""
    h, w = 3000, 4000
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[h // 2, w // 2] = 255
    flat = np.zeros((h, w), np.float32)
    out = render_bokeh(rgb, flat, strength=strength, depth=np.ones_like(flat))
    row = _linear(out[h // 2, w // 2 : w // 2 + 200, 1])
    radius = _r_inf(strength, w)
    assert _edge_width(row) <= 2.0
    assert _fwhm(_linear(out[h // 2, :, 1]), w // 2) == pytest.approx(2 * radius + 1, abs=2.0)


@pytest.mark.parametrize(("strength", "dot"), [(5.0, 3), (15.0, 9)])
def test_a_clipped_light_blurred_apart_keeps_its_boosted_energy(strength: float, dot: int) -> None:
    """12 MP at low strength, where the layers' grids are coarse: a blown light's disc holds its
    boosted energy (6 x its linear value) within 1 % (the dot is sized so that the disc is far
    above the darkest sRGB steps and below clipping)."""
    h, w = 3000, 4000
    rgb = np.zeros((h, w, 3), np.uint8)
    half = dot // 2
    rgb[h // 2 - half : h // 2 + half + 1, w // 2 - half : w // 2 + half + 1] = 255
    flat = np.zeros((h, w), np.float32)
    out = render_bokeh(rgb, flat, strength=strength, depth=np.ones_like(flat))
    assert _linear(out[..., 1]).sum() == pytest.approx(dot * dot * 6.0, rel=0.01)


@pytest.mark.parametrize("level", [0.3, 0.5, 0.9])
def test_a_matte_with_no_sure_background_still_blurs_the_whole_picture(level: float) -> None:
    """α partial everywhere: no pixel is surely background, so the whole picture is the background
    (blurred), never black; the mean brightness stays."""
    rgb = _texture(300, 400, seed=3, cell=40)  # smooth: averaging in linear light moves it little
    alpha = np.full((300, 400), level, np.float32)
    out = render_bokeh(rgb, alpha, strength=50)
    assert abs(float(out.mean()) - float(rgb.mean())) < 3.0
