"""Tests for the picture of point lights (workers.bokeh.lights and .discs through the blurred
background and render_bokeh): each light is one crisp disc of its own radius, with its energy,
its aperture's corners, cut by the subject (issue 13 item 5)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.bokeh import render_bokeh
from workers.bokeh.background import blurred_background
from workers.colour import DECODE

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
GAIN = 6.0  # the boost of a clipped light in dark surroundings (workers.bokeh.highlights)


def _r_inf(strength: float, shape: tuple[int, int]) -> float:
    """The documented blur radius of a background at infinity."""
    return strength / 100.0 * 0.045 * max(shape)


def _background(
    rgb: NDArray[np.uint8],
    alpha: F32,
    depth: F32 | None,
    strength: float,
    aperture: int | None = None,
    rotation: float = 0.0,
) -> F32:
    """The stage's linear blurred background B, before the composite."""
    lin = DECODE[rgb]
    r_inf = _r_inf(strength, alpha.shape)
    return blurred_background(lin, rgb, rgb, alpha, depth, r_inf, aperture, rotation)


def _profile(image: F64, centre: tuple[int, int], angle: float, length: int) -> F64:
    """The pixels along a ray from centre (at most 1.5 px off it), outwards: their distances
    from centre and values, as a 2 x N array, by distance. Pixels, not interpolated samples,
    which would blur an oblique rim by a pixel; a band, not a line, whose pixels on a diagonal
    are 1.4 px apart."""
    cy, cx = centre
    yy, xx = np.mgrid[cy - length : cy + length + 1, cx - length : cx + length + 1]
    dy, dx = (yy - cy).astype(np.float64), (xx - cx).astype(np.float64)
    along = dx * math.cos(angle) + dy * math.sin(angle)
    ray = (np.abs(dy * math.cos(angle) - dx * math.sin(angle)) <= 1.5) & (along >= 0)
    distance, value = np.hypot(dy, dx)[ray], image[yy[ray], xx[ray]]
    order = np.argsort(distance, kind="stable")
    return np.stack([distance[order], value[order]])


def _crossing(profile: F64, level: float) -> float:
    """Distance at which a falling profile first crosses level times its plateau (interpolated)."""
    distance, value = profile
    target = level * float(np.median(value[: max(2, value.size // 3)]))
    i = int(np.nonzero(value < target)[0][0])
    step = (value[i - 1] - target) / (value[i - 1] - value[i])
    return float(distance[i - 1] + step * (distance[i] - distance[i - 1]))


def _check_disc(disc: F64, centre: tuple[int, int], radius: float, energy: float) -> None:
    """One flat disc of this radius around centre: rim (10-90 %) <= 2 px and diameter 2R+1 +- 2
    on 16 radial profiles, and all of the light's energy within 1 %."""
    for angle in np.linspace(0.0, 2 * math.pi, 16, endpoint=False):
        profile = _profile(disc, centre, float(angle), int(radius) + 6)
        assert _crossing(profile, 0.1) - _crossing(profile, 0.9) <= 2.0, (radius, angle)
        assert abs(2 * _crossing(profile, 0.5) - (2 * radius + 1)) <= 2.0, (radius, angle)
        inner = profile[1, profile[0] < 0.8 * radius]
        assert inner.std() <= 0.02 * inner.mean()  # one plateau: no second disc inside
    reach = slice(centre[0] - int(radius) - 4, centre[0] + int(radius) + 5)
    across = slice(centre[1] - int(radius) - 4, centre[1] + int(radius) + 5)
    assert disc[reach, across].sum() == pytest.approx(energy, rel=0.01)


def _night(shape: tuple[int, int], seed: int) -> tuple[NDArray[np.uint8], F32]:
    """A dim textured scene with a subject at the bottom centre."""
    h, w = shape
    rng = np.random.default_rng(seed)
    cells = rng.integers(8, 45, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8)
    rgb = np.asarray(cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (np.hypot((xx - 0.5 * w) / (0.12 * w), (yy - h) / (0.3 * h)) <= 1).astype(np.float32)
    rgb[alpha == 1] = (150, 90, 60)
    return rgb, alpha


def _light_discs(
    rgb: NDArray[np.uint8],
    alpha: F32,
    depth: F32 | None,
    strength: float,
    points: list[tuple[int, int]],
    **kwargs: object,
) -> F64:
    """The green channel of what 1-px clipped lights at points add to the background.

    Without them the points are black; a light far away stays in both renders, so that both
    have lights drawn apart.
    """
    plain = rgb.copy()
    plain[8, 8] = 255
    lit = plain.copy()
    for y, x in points:
        lit[y, x], plain[y, x] = 255, 0
    with_lights = _background(lit, alpha, depth, strength, **kwargs)  # type: ignore[arg-type]
    without = _background(plain, alpha, depth, strength, **kwargs)  # type: ignore[arg-type]
    return np.asarray(with_lights[..., 1], np.float64) - without[..., 1]


@pytest.mark.parametrize(
    ("shape", "strength"),
    [((600, 800), 30.0), ((600, 800), 100.0), ((900, 1200), 15.0), ((1200, 1600), 60.0)],
)
def test_lights_between_layer_radii_are_one_crisp_disc_each(
    shape: tuple[int, int], strength: float
) -> None:
    """With a depth map from 0.3 to 1 the layers sit at 0.3, 0.53, 0.77 and 1 of R_inf; lights
    at depths between them are each drawn once, at their own radius."""
    h, w = shape
    rgb, alpha = _night(shape, seed=1)
    depth = np.tile(np.linspace(1.0, 0.3, h, dtype=np.float32)[:, None], (1, w))
    r_inf = _r_inf(strength, shape)
    wanted = (0.42, 0.65, 0.88)
    rows = [round((1.0 - d) / 0.7 * (h - 1)) for d in wanted]
    points = [(y, int((0.2 + 0.3 * i) * w)) for i, y in enumerate(rows)]
    discs = _light_discs(rgb, alpha, depth, strength, points)
    for y, x in points:
        _check_disc(discs, (y, x), float(depth[y, x]) * r_inf, GAIN)


def test_lights_without_a_depth_map_take_the_radius_of_their_distance_to_the_subject() -> None:
    """The proxy: depth 0.4 next to the subject, rising to 1 a quarter of the long side away."""
    shape, strength = (1200, 1600), 60.0
    rgb, alpha = _night(shape, seed=2)
    points = [(1000, 500), (880, 330), (700, 1350), (150, 300)]
    discs = _light_discs(rgb, alpha, None, strength, points)
    distance = cv2.distanceTransform((alpha < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    for y, x in points:
        depth = 0.4 + 0.6 * min(1.0, float(distance[y, x]) / (0.25 * max(shape)))
        _check_disc(discs, (y, x), depth * _r_inf(strength, shape), GAIN)


def test_lights_on_a_12_mp_photo_at_low_strength() -> None:
    """At 12 MP the layers' grids are coarse (cells of 3.5 px); the lights are not."""
    shape, strength = (3000, 4000), 5.0
    rgb = np.zeros((*shape, 3), np.uint8)
    alpha = np.zeros(shape, np.float32)
    depth = np.tile(np.linspace(0.3, 1.0, shape[1], dtype=np.float32), (shape[0], 1))
    points = [(1500, 2400), (900, 3100), (2000, 3800)]
    for y, x in points:
        rgb[y, x] = 255
    discs = np.asarray(_background(rgb, alpha, depth, strength)[..., 1], np.float64)
    for y, x in points:
        _check_disc(discs, (y, x), float(depth[y, x]) * _r_inf(strength, shape), GAIN)


@pytest.mark.parametrize("rotation", [0.0, 20.0])
def test_a_polygon_aperture_keeps_its_corners(rotation: float) -> None:
    """Six blades at strength 60 on 1600 x 1200: corners at R, sides at R cos 30 degrees."""
    shape, strength = (1200, 1600), 60.0
    rgb, alpha = _night(shape, seed=3)
    centre = (400, 500)
    disc = _light_discs(rgb, alpha, None, strength, [centre], aperture=6, rotation=rotation)
    radius = _r_inf(strength, shape)
    for k in range(12):  # on screen, y grows downwards: angles turn the other way
        angle = math.radians(rotation + 30.0 * k)
        reach = _crossing(_profile(disc, centre, -angle, int(radius) + 6), 0.5)
        expected = radius if k % 2 == 0 else radius * math.cos(math.radians(30.0))
        assert reach == pytest.approx(expected, abs=1.0), k


def test_the_issues_light_far_behind_the_subject_is_one_crisp_disc() -> None:
    """A 5 x 5 white light in 1600 x 1200 at strength 60, through render_bokeh: its rim is as
    wide as the light itself (4 px from 10 to 90 %), no longer a cone of 2 x 14 px."""
    h, w = 1200, 1600
    rgb, alpha = _night((h, w), seed=4)
    rgb[:] = 0
    rgb[alpha == 1] = (150, 90, 60)
    rgb[398:403, 398:403] = 255
    out = DECODE[render_bokeh(rgb, alpha, strength=60.0)][..., 1].astype(np.float64)
    radius = _r_inf(60.0, (h, w))
    for angle in np.linspace(0.0, 2 * math.pi, 8, endpoint=False):
        profile = _profile(out, (400, 400), float(angle), int(radius) + 10)
        assert _crossing(profile, 0.1) - _crossing(profile, 0.9) <= 0.8 * 5 + 1.0
        assert abs(2 * _crossing(profile, 0.5) - (2 * radius + 1)) <= 2.0


def test_a_light_partly_behind_the_subject_is_cut_by_it() -> None:
    """The disc stops at the subject (which keeps its bytes) and is as bright beside it as on its
    far side: the subject hides part of it, nothing makes the rest brighter."""
    h, w = 600, 800
    rgb = np.zeros((h, w, 3), np.uint8)
    alpha = np.zeros((h, w), np.float32)
    alpha[:, 430:] = 1.0
    rgb[:, 430:] = (150, 90, 60)
    rgb[298:301, 408:411] = 255  # 21 px from the subject, its disc's radius 27 px
    out = render_bokeh(rgb, alpha, strength=75.0, depth=np.ones((h, w), np.float32))
    np.testing.assert_array_equal(out[:, 430:], rgb[:, 430:])
    light = DECODE[out][..., 1]
    beside, far = light[290:310, 425:430], light[290:310, 389:394]  # 16-20 px either side
    assert beside.mean() == pytest.approx(far.mean(), rel=0.05)
    assert far.mean() > 0.02
