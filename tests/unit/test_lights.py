"""Tests for workers.bokeh.lights, .discs, .aperture and .highlights: every point light is one
crisp disc of its own radius; the stand-ins agree with the whole-frame OpenCV operations they
replace; only small clipped lights are boosted."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.bokeh.aperture import aperture_corners, aperture_kernel, convolve
from workers.bokeh.background import blurred_background
from workers.bokeh.discs import draw_lights
from workers.bokeh.enlarge import Enlarge
from workers.bokeh.highlights import highlight_gain
from workers.bokeh.lights import Lights, area_grid, gather_lights, light_radii, point_lights
from workers.colour import DECODE

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
GAIN = 6.0  # the boost of a clipped light in dark surroundings (workers.bokeh.highlights)


def _lights(lit: NDArray[np.uint8], colour: F32, widest: float) -> Lights:
    """The blobs of ``lit`` that are point lights for discs up to ``widest``, coloured from the
    H×W×3 ``colour``."""
    labels, sides = point_lights(lit, widest)
    return gather_lights(lit, labels, sides, lambda ys, xs: colour[ys, xs])


def _random_lights(shape: tuple[int, int], share: float, seed: int) -> tuple[Lights, F32]:
    """Lights on a random share of the pixels, and the dense image they stand for."""
    rng = np.random.default_rng(seed)
    lit = (rng.random(shape) < share).astype(np.uint8)
    colour = rng.random((*shape, 3)).astype(np.float32)
    lights = _lights(lit, colour, 2.0)
    dense = np.zeros_like(colour)
    dense[lights.ys, lights.xs] = lights.colour
    return lights, dense


# --- the picture: one crisp disc per light ---------------------------------------------------


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
    from workers.bokeh import render_bokeh

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
    from workers.bokeh import render_bokeh

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


# --- the drawing: stand-ins for whole-frame operations ------------------------------------------


def _whole_frame(image: F32, radius: float, step: int, blades: int | None) -> F32:
    """Block mean by step, the aperture of radius / step, bilinear back: over the whole frame."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, -h % step), (0, -w % step), (0, 0)))
    cells = (padded.shape[1] // step, padded.shape[0] // step)
    small = cv2.resize(padded, cells, interpolation=cv2.INTER_AREA) if step > 1 else padded
    kernel = aperture_kernel(radius / step, blades, 25.0)
    blurred = cv2.filter2D(small, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    if step > 1:
        size = (cells[0] * step, cells[1] * step)
        blurred = cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)
    return np.asarray(blurred, np.float32)[:h, :w]


@pytest.mark.parametrize(
    ("size", "radius", "step"), [(1, 6.0, 1), (5, 27.0, 1), (3, 63.0, 1), (16, 44.0, 4)]
)
@pytest.mark.parametrize("blades", [None, 5])
def test_drawn_discs_equal_the_whole_frame_blur(
    size: int, radius: float, step: int, blades: int | None
) -> None:
    """Lights of one size, some at the frame's edges, two sharing a canvas, drawn apart: the same
    as blurring the frame with the aperture on cells of the step their size gives (16 px: 4)."""
    shape = (300, 400)
    rng = np.random.default_rng(size)
    lit = np.zeros(shape, np.uint8)
    for y, x in [(0, 1), (150, 200), (300 - size, 400 - size), (60, 330), (60, 333 + size)]:
        lit[y : y + size, x : x + size] = 1
    colour = rng.random((*shape, 3)).astype(np.float32)
    lights = _lights(lit, colour, radius)
    assert lights.sizes.size == 5
    into = np.zeros((*shape, 3), np.float32)
    radii = np.full(lights.sizes.size, radius)
    draw_lights(into, lights, radii, lambda r: aperture_corners(r, blades, 25.0))
    dense = np.zeros_like(colour)
    dense[lights.ys, lights.xs] = lights.colour
    expected = _whole_frame(dense, radius, step, blades)
    inside = slice(step, -step) if step > 1 else slice(None)  # past the frame, discs go on
    np.testing.assert_allclose(
        into[inside, inside], expected[inside, inside], atol=2e-5 * float(expected.max())
    )


@pytest.mark.parametrize("radius", [0.0, 0.3, 2.5, 8.0, 35.9, 180.0])
@pytest.mark.parametrize(
    ("blades", "rotation"), [(None, 0.0), (3, 90.0), (4, 45.0), (6, 17.0), (64, 3.0)]
)
def test_aperture_corners_integrate_to_the_kernel(
    radius: float, blades: int | None, rotation: float
) -> None:
    """The 2D running sum of the corners is the kernel, flipped to the light's own shape."""
    corners = aperture_corners(radius, blades, rotation)
    n = math.ceil(radius + 0.5) + 3
    image = np.zeros((2 * n + 1, 2 * n + 1))
    np.add.at(image, (corners.rows + n, corners.cols + n), corners.values)
    drawn = image.cumsum(axis=0).cumsum(axis=1)
    kernel = aperture_kernel(radius, blades, rotation)[::-1, ::-1]
    k = kernel.shape[0] // 2
    np.testing.assert_allclose(drawn[n - k : n + k + 1, n - k : n + k + 1], kernel, atol=1e-7)
    assert np.abs(drawn).sum() == pytest.approx(1.0, abs=1e-6)  # nothing outside the kernel
    assert corners.rows.size < 16 * (radius + 2)  # only the rim: cost follows R, not R^2


def test_a_light_takes_one_radius_weighted_by_its_pixels_energy() -> None:
    lit = np.zeros((40, 40), np.uint8)
    lit[10, 10:13] = 1  # one light of three pixels across a step of the depth map
    lit[30, 30] = 1
    colour = np.zeros((40, 40, 3), np.float32)
    colour[10, 10:13] = [[3, 3, 3], [1, 1, 1], [0, 0, 0.0]]
    colour[30, 30] = 1
    lights = _lights(lit, colour, 4.0)
    radius = np.zeros(lights.ys.size, np.float32)
    radius[lights.ys == 10] = [10.0, 20.0, 99.0]
    radius[lights.ys == 30] = 7.0
    np.testing.assert_allclose(light_radii(lights, radius), [12.5, 7.0])


def test_point_lights_keeps_small_lights_and_drops_areas_and_long_lines() -> None:
    lit = np.zeros((400, 400), np.uint8)
    lit[10:14, 10:14] = 1  # a point light
    lit[100:300, 100:300] = 1  # a bright area
    lit[50, 150:390] = 1  # a long thin line
    lit[380:390, 380:386] = 1  # a small blob, 10 px tall
    kept = lit.copy()
    labels, sides = point_lights(kept, 10)
    assert kept[10:14, 10:14].all() and kept[380:390, 380:386].all()
    assert not kept[100:300, 100:300].any() and not kept[50].any()
    assert kept.sum() == 16 + 60
    assert labels[5, 5] != labels[190, 190] and sides[labels[5, 5]] == 4


def test_point_lights_keep_the_smallest_while_their_discs_are_affordable() -> None:
    """Many lights with large discs on a small photo: the smallest are kept, the larger go back
    to the layers, never a larger one kept while a smaller one goes; on a large photo all stay."""
    lit = np.zeros((300, 400), np.uint8)
    for k in range(150):  # 24 px apart, 2 to 18 px wide, on even pixels
        side, y, x = 2 + 2 * (k % 9), 24 * (k // 16), 24 * (k % 16)
        lit[y : y + side, x : x + side] = 1
    kept = lit.copy()
    labels, sides = point_lights(kept, 40)
    blobs = np.unique(labels[lit[::2, ::2] == 1])  # lights on even pixels, with even sides
    kept_blobs = np.unique(labels[kept[::2, ::2] == 1])
    dropped = np.setdiff1d(blobs, kept_blobs)
    assert kept_blobs.size > 0 and dropped.size > 0
    assert sides[kept_blobs].max() < sides[dropped].min()
    big = np.zeros((3000, 4000), np.uint8)
    big[:300, :400] = lit
    point_lights(big, 40)
    np.testing.assert_array_equal(big[:300, :400], lit)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((3000, 4000), (1155, 866)), ((777, 1234), (301, 190)), ((500, 500), (500, 500))],
)
def test_area_grid_matches_opencv_area_resize(
    shape: tuple[int, int], size: tuple[int, int]
) -> None:
    """Summing the lights into cells is the INTER_AREA reduction of their image."""
    lights, dense = _random_lights(shape, 0.01, seed=1)
    expected = cv2.resize(dense, size, interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(area_grid(lights, size), expected, atol=1e-6)


def test_enlarge_matches_opencv_linear_resize_in_windows_and_at_points() -> None:
    rng = np.random.default_rng(2)
    grid = rng.random((190, 301)).astype(np.float32)
    h, w = 777, 1234
    full = cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    enlarge = Enlarge(grid.shape, (h, w))
    for rows, cols in [
        (slice(0, 40), slice(0, 70)),
        (slice(h - 33, h), slice(w - 64, w)),
        (slice(300, 364), slice(17, 200)),
    ]:
        np.testing.assert_allclose(enlarge.window(grid, rows, cols), full[rows, cols], atol=1e-6)
    ys, xs = rng.integers(0, h, 500), rng.integers(0, w, 500)
    np.testing.assert_allclose(enlarge.at(grid, ys, xs), full[ys, xs], atol=1e-6)


@pytest.mark.parametrize("radius", [3.1, 4.7, 6.2, 7.8, 12.0])
@pytest.mark.parametrize("blades", [None, 5, 6])
def test_convolve_matches_filter2d(radius: float, blades: int | None) -> None:
    """Strips summed directly give what one filter2D (DFT or not) gives."""
    image = np.random.default_rng(4).random((120, 170, 4)).astype(np.float32)
    kernel = aperture_kernel(radius, blades, 10.0)
    expected = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(convolve(image, kernel), expected, atol=1e-6)


@pytest.mark.parametrize("radius", [0.3, 2.5, 4.7, 8.0, 15.9])
def test_aperture_kernel_is_normalised_odd_and_has_no_empty_ring(radius: float) -> None:
    kernel = aperture_kernel(radius, None, 0.0)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    assert kernel[[0, -1]].any() or kernel[:, [0, -1]].any()


def test_only_small_clipped_lights_in_dark_surroundings_are_boosted() -> None:
    peak = np.full((400, 600), 20, np.uint8)
    peak[100:103, 100:103] = 255  # a clipped light in the dark
    peak[300:304, 100:104] = 245  # bright, not clipped
    peak[:, 400:] = 255  # a clipped area: a sky
    gain = highlight_gain(peak)
    assert gain[101, 101] == pytest.approx(GAIN, rel=0.01)
    np.testing.assert_array_equal(gain[300:304, 100:104], 1.0)
    assert np.abs(gain[:, 450:] - 1.0).max() < 1e-6
    assert np.all(gain[peak < 250] == 1.0)
