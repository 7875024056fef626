"""Tests for workers.bokeh.lights, .highlights and .aperture: the point-light path agrees with
whole-frame OpenCV operations it stands in for; only small clipped lights are boosted."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.bokeh.aperture import aperture_kernel, convolve
from workers.bokeh.highlights import highlight_gain
from workers.bokeh.lights import (
    KERNEL_RADIUS,
    Enlarge,
    Lights,
    area_grid,
    blur_highlights,
    gather_lights,
    point_lights,
)


def _random_lights(
    shape: tuple[int, int], share: float, seed: int
) -> tuple[Lights, NDArray[np.float32]]:
    """Lights on a random share of the pixels, and the dense image they stand for."""
    rng = np.random.default_rng(seed)
    lit = (rng.random(shape) < share).astype(np.uint8)
    colour = rng.random((*shape, 3)).astype(np.float32)
    lights = gather_lights(lit, lambda ys, xs: colour[ys, xs])
    dense = np.zeros_like(colour)
    dense[lights.ys, lights.xs] = lights.colour
    return lights, dense


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


def test_point_lights_keeps_small_lights_and_drops_areas_and_long_lines() -> None:
    lit = np.zeros((400, 400), np.uint8)
    lit[10:14, 10:14] = 1  # a point light
    lit[100:300, 100:300] = 1  # a bright area
    lit[50, 150:390] = 1  # a long thin line
    lit[380:390, 380:386] = 1  # a small blob, 10 px tall
    kept = point_lights(lit.copy(), largest=10)
    assert kept[10:14, 10:14].all() and kept[380:390, 380:386].all()
    assert not kept[100:300, 100:300].any() and not kept[50].any()
    assert kept.sum() == 16 + 60


def _whole_frame(
    image: NDArray[np.float32], aperture: NDArray[np.float32], step: int
) -> NDArray[np.float32]:
    """The lights blurred on the whole frame at once: block mean, filter2D, bilinear back."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, -h % step), (0, -w % step), (0, 0)))
    cells = (padded.shape[1] // step, padded.shape[0] // step)
    small = cv2.resize(padded, cells, interpolation=cv2.INTER_AREA) if step > 1 else padded
    blurred = cv2.filter2D(small, -1, aperture, borderType=cv2.BORDER_CONSTANT)
    if step > 1:
        blurred = cv2.resize(
            blurred, (cells[0] * step, cells[1] * step), interpolation=cv2.INTER_LINEAR
        )
    return np.asarray(blurred, np.float32)[:h, :w]


@pytest.mark.parametrize("radius", [6.0, 12.0, 27.0, 44.0, 63.0])
def test_lights_blurred_apart_equal_the_whole_frame_blur(radius: float) -> None:
    """Windows just large enough for each group of lights miss none of their blur (steps 1-7)."""
    shape = (600, 800)
    lights, dense = _random_lights(shape, 0.0005, seed=int(radius))
    into = np.zeros((*shape, 3), np.float32)
    cover = np.full((60, 80), 0.5, np.float32)  # any grid: divided out below
    blur_highlights(
        into,
        cover,
        lights,
        np.full(lights.ys.size, radius, np.float32),
        [radius],
        [0],
        lambda r: aperture_kernel(r, None, 0.0),
    )
    step = max(1, int(radius // KERNEL_RADIUS))
    expected = _whole_frame(dense, aperture_kernel(radius / step, None, 0.0), step) / 0.5
    np.testing.assert_allclose(into, expected, atol=1e-5 * float(expected.max()))


def test_a_light_spreads_over_the_two_layers_around_its_radius() -> None:
    """Between two layers a light's energy is split by its distance to each, summing to all."""
    shape = (300, 300)
    lit = np.zeros(shape, np.uint8)
    lit[150, 150] = 1
    lights = gather_lights(lit, lambda ys, xs: np.ones((ys.size, 3), np.float32))
    cover = np.ones((30, 30), np.float32)
    parts = []
    for layer in (0, 1):
        into = np.zeros((*shape, 3), np.float32)
        blur_highlights(
            into,
            cover,
            lights,
            np.array([13.0], np.float32),
            [10.0, 20.0],
            [layer],
            lambda r: aperture_kernel(r, None, 0.0),
        )
        parts.append(float(into[..., 0].sum()))
    assert parts == pytest.approx([0.7, 0.3], abs=1e-4)


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
    assert gain[101, 101] == pytest.approx(6.0, rel=0.01)
    np.testing.assert_array_equal(gain[300:304, 100:104], 1.0)
    assert np.abs(gain[:, 450:] - 1.0).max() < 1e-6
    assert np.all(gain[peak < 250] == 1.0)
