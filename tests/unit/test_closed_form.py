"""Closed-form matting in the uncertain band, on synthetic composites with a known alpha."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from workers.matting.closed_form import (
    _EPS,
    _PAD,
    _STENCIL,
    _WINDOW,
    _laplacian_rows,
    closed_form_refine,
    trimap,
    unknown_pixels,
)


def _composite(truth: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The astronaut over the coffee cup, mixed by truth, at truth's size."""
    height, width = truth.shape
    front = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    back = cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_CUBIC)
    mix = truth[..., None] * front + (1.0 - truth[..., None]) * back
    return np.clip(np.round(mix), 0, 255).astype(np.uint8)


def _disc(height: int, width: int) -> NDArray[np.float32]:
    """A disc with an antialiased, slightly soft edge."""
    truth = np.zeros((height, width), np.float32)
    cv2.circle(truth, (width // 2, height // 2), min(height, width) // 3, 1.0, -1, cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(truth, (0, 0), 1.0), np.float32)


def test_a_blurred_alpha_comes_back_closer_to_the_truth() -> None:
    truth = _disc(300, 400)
    rgb = _composite(truth)
    blurred = np.asarray(cv2.GaussianBlur(truth, (0, 0), 4.0), np.float32)
    refined = closed_form_refine(rgb, blurred)
    assert refined.shape == truth.shape and refined.dtype == np.float32
    assert refined.min() >= 0.0 and refined.max() <= 1.0
    assert np.abs(refined - truth).sum() < 0.6 * np.abs(blurred - truth).sum()


def test_a_semi_transparent_part_stays_soft() -> None:
    """A veil at alpha 0.5 beside an opaque disc: the solve must not snap it to 0 or 1."""
    truth = _disc(300, 400)
    truth[40:110, 30:150] = 0.5
    rgb = _composite(truth)
    refined = closed_form_refine(rgb, truth)
    veil = refined[50:100, 40:140]
    assert veil.min() > 0.2 and veil.max() < 0.8
    assert abs(float(veil.mean()) - 0.5) < 0.1


def test_definite_regions_are_kept_and_the_result_is_deterministic() -> None:
    truth = _disc(200, 260)
    rgb = _composite(truth)
    refined = closed_form_refine(rgb, truth)
    subject, background = trimap(truth, 2)
    assert subject.any() and background.any()
    assert np.all(refined[subject] == 1.0) and np.all(refined[background] == 0.0)
    assert np.array_equal(closed_form_refine(rgb, truth), refined)


def test_a_confident_alpha_is_returned_unchanged() -> None:
    alpha = np.zeros((120, 160), np.float32)
    alpha[30:90, 40:120] = 1.0
    rgb = _composite(alpha)
    refined = closed_form_refine(rgb, np.zeros_like(alpha))
    assert np.all(refined == 0.0)


def test_a_mismatched_alpha_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        closed_form_refine(np.zeros((10, 12, 3), np.uint8), np.zeros((12, 10), np.float32))


def test_laplacian_rows_match_the_definition() -> None:
    """Rows against L = Σ_windows δ_ij − (1 + (I_i − μ)ᵀ(Σ + ε/9)⁻¹(I_j − μ)) / 9, built densely."""
    height, width = 7, 8
    image = np.random.default_rng(3).random((height, width, 3))
    dense = np.zeros((height * width, height * width))
    for y in range(1, height - 1):
        for x in range(1, width - 1):
            members = [(y + dy) * width + x + dx for dy, dx in _WINDOW]
            colours = image.reshape(-1, 3)[members]
            centred = colours - colours.mean(axis=0)
            covariance = centred.T @ centred / 9 + _EPS / 9 * np.eye(3)
            affinity = (1.0 + centred @ np.linalg.inv(covariance) @ centred.T) / 9
            dense[np.ix_(members, members)] += np.eye(9) - affinity
    padded = np.zeros((height + 2 * _PAD, width + 2 * _PAD), bool)
    padded[_PAD:-_PAD, _PAD:-_PAD] = True
    coefficients = _laplacian_rows(image, padded, np.flatnonzero(padded))
    for y, x in ((0, 0), (3, 4), (6, 7), (2, 6)):
        for slot, (dy, dx) in enumerate(_STENCIL):
            inside = 0 <= y + dy < height and 0 <= x + dx < width
            expected = dense[y * width + x, (y + dy) * width + x + dx] if inside else 0.0
            assert coefficients[slot, y * width + x] == pytest.approx(expected, abs=1e-4)


def test_unknown_pixels_count_the_band() -> None:
    truth = _disc(300, 400)
    subject, background = trimap(truth, 3)  # 0.75 % of 400 px
    assert unknown_pixels(truth) == truth.size - np.count_nonzero(subject | background) > 0
    assert unknown_pixels(np.zeros((300, 400), np.float32)) == 0
