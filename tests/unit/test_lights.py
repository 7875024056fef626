"""Tests for workers.bokeh.lights, .discs, .aperture, .enlarge and .highlights: the point lights
found, their discs drawn as the whole-frame OpenCV operations they stand in for would draw them;
only small clipped lights are boosted. The picture they make: ``test_light_discs.py``."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.bokeh.aperture import aperture_corners, aperture_kernel, convolve
from workers.bokeh.discs import draw_lights
from workers.bokeh.enlarge import Enlarge
from workers.bokeh.highlights import highlight_gain
from workers.bokeh.lights import Lights, area_grid, gather_lights, light_radii, point_lights

F32 = NDArray[np.float32]
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
