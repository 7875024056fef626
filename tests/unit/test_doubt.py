"""Wide regions of mid alpha: decided by colour where it is clear, kept where it is not."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.matting.closed_form import band_width
from workers.matting.doubt import resolve_doubt, wide_regions
from workers.matting.refine import refine_with_decided

HEIGHT, WIDTH = 300, 400
LIGHT, DARK, RED, BLUE = (205, 200, 190), (40, 38, 45), (200, 30, 30), (30, 40, 190)


def _scene(subject: tuple[int, int, int], background: tuple[int, int, int]) -> NDArray[np.uint8]:
    """A plain background with a subject rectangle in the middle, both with sensor-like noise."""
    rgb = np.empty((HEIGHT, WIDTH, 3), np.float32)
    rgb[:] = background
    rgb[60:260, 100:300] = subject
    rgb += np.random.default_rng(3).normal(0.0, 4.0, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _matte() -> NDArray[np.float32]:
    """The subject rectangle at α = 1 with a soft two-pixel edge."""
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    alpha[60:260, 100:300] = 1.0
    return np.asarray(cv2.GaussianBlur(alpha, (0, 0), 1.0), np.float32)


def _resolve(alpha: NDArray[np.float32], rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    return resolve_doubt(alpha, rgb, band_width(alpha))


def test_a_dark_region_at_04_inside_a_subject_of_its_colour_goes_to_the_subject() -> None:
    rgb = _scene(DARK, LIGHT)
    alpha = _matte()
    alpha[100:220, 140:260] = 0.4  # the network unsure of a dark sweater
    resolved = _resolve(alpha, rgb)
    assert resolved[100:220, 140:260].min() == 1.0
    assert np.array_equal(resolved[:, :90], alpha[:, :90])  # the background is untouched
    # Through the whole refinement (and its closed-form solve), the region stays subject, and
    # the refinement says how much of the subject it decided: 0.6 of 120² out of about 200².
    refined, decided = refine_with_decided(alpha, rgb)
    assert refined[110:210, 150:250].mean() > 0.97
    assert 0.15 < decided < 0.3


def test_a_region_at_04_of_the_background_colour_goes_to_the_background() -> None:
    rgb = _scene(DARK, LIGHT)
    rgb[40:120, 260:360] = LIGHT  # a patch of wall the network half took for the subject
    alpha = _matte()
    alpha[40:120, 260:360] = 0.4
    resolved = _resolve(alpha, rgb)
    assert resolved[50:110, 300:350].max() == 0.0
    assert np.array_equal(resolved[150:250, 110:250], alpha[150:250, 110:250])


def test_a_thin_band_of_hair_at_mid_alpha_is_kept() -> None:
    rgb = _scene(DARK, LIGHT)
    alpha = _matte()
    alpha[56:60, 100:300] = 0.5  # a strip of hair along the top, a few pixels wide
    assert wide_regions(alpha, band_width(alpha))[1] == 0
    assert np.array_equal(_resolve(alpha, rgb), alpha)
    assert refine_with_decided(alpha, rgb)[1] == 0.0


def test_a_uniform_veil_whose_colour_is_a_mix_is_kept() -> None:
    rgb = _scene(RED, BLUE)
    alpha = _matte()
    veil = np.s_[100:220, 10:90]  # beside the subject, over the background
    rgb[veil] = np.round(0.5 * np.array(RED) + 0.5 * np.array(BLUE)).astype(np.uint8)
    alpha[veil] = 0.5
    assert wide_regions(alpha, band_width(alpha))[1] == 1  # wide: a candidate for doubt
    assert np.array_equal(_resolve(alpha, rgb), alpha)


def test_a_faint_veil_close_to_the_background_colour_is_kept() -> None:
    rgb = _scene(RED, BLUE)
    alpha = _matte()
    veil = np.s_[100:220, 10:90]
    rgb[veil] = np.round(0.2 * np.array(RED) + 0.8 * np.array(BLUE)).astype(np.uint8)
    alpha[veil] = 0.2
    assert np.array_equal(_resolve(alpha, rgb), alpha)


def test_a_region_of_subject_colour_apart_from_the_subject_is_kept() -> None:
    rgb = _scene(DARK, LIGHT)
    rgb[20:100, 310:390] = DARK  # a dark object of its own, away from the subject
    alpha = _matte()
    alpha[20:100, 310:390] = 0.4
    assert np.array_equal(_resolve(alpha, rgb), alpha)


def test_nothing_is_decided_without_confident_pixels_to_learn_from() -> None:
    rgb = _scene(DARK, LIGHT)
    alpha = np.full((HEIGHT, WIDTH), 0.4, np.float32)
    assert np.array_equal(_resolve(alpha, rgb), alpha)


def test_textured_colours_and_determinism() -> None:
    """A subject and a background of many colours: same answer twice, and the region decided."""
    rng = np.random.default_rng(11)
    blocks = rng.integers(0, 256, (HEIGHT // 20, WIDTH // 20, 3)).astype(np.uint8)
    rgb = cv2.resize(blocks, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
    rgb[60:260, 100:300] = _scene(DARK, LIGHT)[60:260, 100:300]
    alpha = _matte()
    alpha[100:220, 140:260] = 0.4
    first = _resolve(alpha, rgb)
    assert np.array_equal(first, _resolve(alpha.copy(), rgb.copy()))
    assert first[100:220, 140:260].mean() > 0.95
