"""Tests for foreground estimation: contract, untouched solid pixels, colours under soft hair."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from workers.matting import estimate_foreground

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


def _linear(srgb: U8) -> F32:
    """Decode sRGB bytes with the exact transfer curve (independent of the module's tables)."""
    v = np.arange(256) / 255.0
    table = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)
    return table[srgb]


def _srgb(lin: F32) -> U8:
    v = np.clip(lin, 0.0, 1.0)
    v = np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** np.float32(1 / 2.4) - 0.055)
    return np.round(v * 255.0).astype(np.uint8)


def _over(front: U8, alpha: F32, back: U8) -> U8:
    """α·F + (1−α)·B in linear light, as light mixes at a soft edge and as the compositor mixes."""
    a = alpha[..., None]
    return _srgb(a * _linear(front) + (1.0 - a) * _linear(back))


def _hair_matte(h: int, w: int, seed: int = 0, strands: int = 150) -> F32:
    """A soft-edged head with thin, blurred strands of hair around it."""
    rng = np.random.default_rng(seed)
    k = min(h, w) / 256  # the scene scales with the picture
    cx, cy, r = w / 2, h / 2, 0.3 * min(h, w)
    disc = np.zeros((h, w), np.float32)
    cv2.circle(disc, (round(cx), round(cy)), round(r), 1.0, -1, cv2.LINE_AA)
    head = cv2.GaussianBlur(disc, (0, 0), 2 * k)
    lines = np.zeros_like(disc)
    for angle in rng.uniform(0, 2 * np.pi, strands):
        t = np.linspace(0.9, 1.0 + 0.25 * rng.uniform(0.5, 1.0), 8)
        theta = angle + rng.normal(0, 0.3) * (t - 0.9)  # a slight curl
        points = np.stack([cx + r * t * np.cos(theta), cy + r * t * np.sin(theta)], axis=1)
        fixed = [np.round(points * 16).astype(np.int32)]  # 4 fractional bits: smooth curves
        cv2.polylines(lines, fixed, False, 1.0, max(1, round(k)), cv2.LINE_AA, shift=4)
    hair = cv2.GaussianBlur(lines, (0, 0), 0.6 * k)
    return np.asarray(np.clip(np.maximum(head, hair), 0.0, 1.0), dtype=np.float32)


def _scene(h: int, w: int, seed: int = 0) -> tuple[U8, F32, U8, U8]:
    """A photo of auburn hair over green foliage: (photo, matte, true F, true B)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    x, y = xx / w, yy / h
    front = np.stack([150 + 60 * x, 70 + 30 * y, 40 + 20 * x * y], axis=-1)
    leaves = rng.random((64, 64)).astype(np.float32)  # out of focus
    field = cv2.GaussianBlur(cv2.resize(leaves, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 2)
    field = (field - field.min()) / (field.max() - field.min())
    back = np.stack([20 + 60 * field, 120 + 120 * field, 10 + 40 * (1 - field)], axis=-1)
    fg, bg = np.round(front).astype(np.uint8), np.round(back).astype(np.uint8)
    alpha = _hair_matte(h, w, seed)
    return _over(fg, alpha, bg), alpha, fg, bg


def _mean_abs(a: U8, b: U8, where: NDArray[np.bool_]) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[where].mean())


@pytest.fixture(scope="module")
def scene() -> tuple[U8, F32, U8, U8]:
    return _scene(384, 512)


# --- contract -------------------------------------------------------------------------------

RGB = np.zeros((8, 6, 3), np.uint8)
ALPHA = np.full((8, 6), 0.5, np.float32)


@pytest.mark.parametrize(
    ("rgb", "alpha", "match"),
    [
        (RGB.astype(np.float32), ALPHA, "rgb must be"),
        (RGB[..., 0], ALPHA, "rgb must be"),
        (np.zeros((8, 6, 4), np.uint8), ALPHA, "rgb must be"),
        (np.zeros((0, 6, 3), np.uint8), ALPHA[:0], "rgb must be"),
        (RGB.tolist(), ALPHA, "rgb must be"),
        (RGB, ALPHA.astype(np.float64), "alpha must be a float32"),
        (RGB, ALPHA[:, :5], "alpha must be a float32"),
        (RGB, ALPHA[..., None], "alpha must be a float32"),
        (RGB, ALPHA.tolist(), "alpha must be a float32"),
        (RGB, ALPHA + 1.0, r"alpha must lie in \[0, 1\]"),
        (RGB, ALPHA - 1.0, r"alpha must lie in \[0, 1\]"),
        (RGB, np.where(ALPHA > 0, np.float32(np.nan), ALPHA), r"alpha must lie in \[0, 1\]"),
    ],
)
def test_bad_inputs_raise_value_error(rgb: Any, alpha: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_foreground(rgb, alpha)


def test_returns_a_new_uint8_photo_of_the_same_shape(scene: tuple[U8, F32, U8, U8]) -> None:
    rgb, alpha, _, _ = scene
    rgb_before, alpha_before = rgb.copy(), alpha.copy()
    out = estimate_foreground(rgb, alpha)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert out is not rgb and not np.shares_memory(out, rgb)
    np.testing.assert_array_equal(rgb, rgb_before)  # inputs untouched
    np.testing.assert_array_equal(alpha, alpha_before)


# --- pass-through ---------------------------------------------------------------------------


def test_solid_pixels_keep_their_bytes(scene: tuple[U8, F32, U8, U8]) -> None:
    rgb, alpha, _, _ = scene
    alpha = alpha.copy()
    alpha[::7, ::5] = np.float32(0.99)  # the thresholds themselves count as solid
    alpha[3::7, ::5] = np.float32(0.01)
    out = estimate_foreground(rgb, alpha)
    solid = (alpha >= 0.99) | (alpha <= 0.01)
    np.testing.assert_array_equal(out[solid], rgb[solid])
    soft = (alpha > 0.1) & (alpha < 0.9)
    assert (out[soft] != rgb[soft]).any(axis=1).mean() > 0.9  # while the soft edge does change


def test_a_hard_matte_changes_nothing() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.zeros((60, 80), np.float32)
    alpha[10:50, 20:60] = 1.0
    np.testing.assert_array_equal(estimate_foreground(rgb, alpha), rgb)


# --- colours under soft hair ----------------------------------------------------------------


def test_estimate_is_much_closer_to_the_true_foreground_than_the_photo(
    scene: tuple[U8, F32, U8, U8],
) -> None:
    rgb, alpha, fg, _ = scene
    out = estimate_foreground(rgb, alpha)
    band = (alpha > 0.1) & (alpha < 0.9)
    assert band.sum() > 5000  # plenty of hair to judge by
    photo_error, estimate_error = _mean_abs(rgb, fg, band), _mean_abs(out, fg, band)
    assert photo_error > 30  # the old background really shows through the hair
    assert estimate_error < photo_error / 3, (estimate_error, photo_error)


def test_estimate_over_the_true_background_rebuilds_the_photo(
    scene: tuple[U8, F32, U8, U8],
) -> None:
    rgb, alpha, _, bg = scene
    band = (alpha > 0.1) & (alpha < 0.9)
    rebuilt = _over(estimate_foreground(rgb, alpha), alpha, bg)
    assert _mean_abs(rebuilt, rgb, band) < 3.0
    assert _mean_abs(_over(rgb, alpha, bg), rgb, band) > 10.0  # the photo itself as F does not


def test_estimate_keeps_the_hair_colour_not_the_foliage(scene: tuple[U8, F32, U8, U8]) -> None:
    rgb, alpha, fg, _ = scene
    band = (alpha > 0.1) & (alpha < 0.5)  # mostly background shows through here
    out = estimate_foreground(rgb, alpha).astype(np.float64)
    green_excess = out[..., 1] - out[..., 0]  # auburn hair: red well above green
    photo_excess = rgb[..., 1].astype(np.float64) - rgb[..., 0]
    true_excess = fg[..., 1].astype(np.float64) - fg[..., 0]
    assert photo_excess[band].mean() > 0  # the photo's thin hair looks green
    assert abs(green_excess[band].mean() - true_excess[band].mean()) < 15


# --- big photos, odd shapes, repeatability --------------------------------------------------


def test_big_photo_keeps_its_shape_and_its_gain() -> None:
    rgb, alpha, fg, _ = _scene(2000, 3000)
    out = estimate_foreground(rgb, alpha)
    assert out.shape == (2000, 3000, 3) and out.dtype == np.uint8
    solid = (alpha >= 0.99) | (alpha <= 0.01)
    np.testing.assert_array_equal(out[solid], rgb[solid])
    band = (alpha > 0.1) & (alpha < 0.9)
    assert _mean_abs(out, fg, band) < _mean_abs(rgb, fg, band) / 3


@pytest.mark.parametrize("shape", [(400, 500), (600, 800)])  # grid: the photo, then half of it
def test_a_photo_twice_the_size_gets_the_same_colours(shape: tuple[int, int]) -> None:
    rgb, alpha, _, _ = _scene(*shape)
    twice = estimate_foreground(*(np.repeat(np.repeat(x, 2, 0), 2, 1) for x in (rgb, alpha)))
    once = np.repeat(np.repeat(estimate_foreground(rgb, alpha), 2, 0), 2, 1)
    soft = np.repeat(np.repeat((alpha > 0.01) & (alpha < 0.99), 2, 0), 2, 1)
    error = _mean_abs(twice, once, soft)
    assert error < 1.5, error  # the boxes scale with the photo, and the grid does not show


@pytest.mark.parametrize("shape", [(1, 2500), (2500, 1), (3, 3)])
def test_thin_and_tiny_photos(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    alpha = rng.random(shape, dtype=np.float32)
    out = estimate_foreground(rgb, alpha)
    assert out.shape == rgb.shape


def test_strided_views_give_the_same_result(scene: tuple[U8, F32, U8, U8]) -> None:
    rgb, alpha, _, _ = scene
    flipped = estimate_foreground(rgb[:, ::-1], alpha[:, ::-1])
    np.testing.assert_array_equal(
        flipped, estimate_foreground(rgb[:, ::-1].copy(), alpha[:, ::-1].copy())
    )


def test_same_input_gives_the_same_bytes(scene: tuple[U8, F32, U8, U8]) -> None:
    rgb, alpha, _, _ = scene
    np.testing.assert_array_equal(estimate_foreground(rgb, alpha), estimate_foreground(rgb, alpha))
