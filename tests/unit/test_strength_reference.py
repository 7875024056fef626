"""``strength_reference``: blur sized to the subject makes tight and loose crops look alike."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from infra.errors import InvalidJob
from infra.jobs import BlurParams
from workers.bokeh.render import radius_at_infinity
from workers.colour import DECODE
from workers.render import render

SCENE = 1200  # a square scene, the subject 240 wide and 300 tall in its middle, a light beside it
SUBJECT = (slice(450, 750), slice(480, 720))
LIGHT = (600, 790)  # 70 px right of the subject: inside both crops, clear of every disc
CROPS = {"tight": 500, "loose": 1000}  # the subject fills 60 % and 30 % of the crop's height
STRENGTH = 60
SUBJECT_R = STRENGTH / 100 * 0.045 * np.sqrt(240 * 300) / 0.7  # 10.35 px in both crops


def _scene() -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    rgb = np.zeros((SCENE, SCENE, 3), np.uint8)
    alpha = np.zeros((SCENE, SCENE), np.float32)
    rgb[SUBJECT], alpha[SUBJECT] = 128, 1.0
    rgb[LIGHT[0] - 1 : LIGHT[0] + 2, LIGHT[1] - 1 : LIGHT[1] + 2] = 255
    return rgb, alpha


def _crop(size: int) -> tuple[NDArray[np.uint8], NDArray[np.float32], int]:
    """The scene's centred square of that size, and where the light's column lies in it."""
    rgb, alpha = _scene()
    top = (SCENE - size) // 2
    window = (slice(top, top + size), slice(top, top + size))
    return rgb[window].copy(), alpha[window].copy(), top


def _measured_radius(size: int, reference: str) -> float:
    """The light's disc radius, from the width of its row's profile at half its plateau."""
    rgb, alpha, top = _crop(size)
    params = BlurParams(strength=STRENGTH, strength_reference=reference)
    out = render(rgb, alpha, params, depth=np.ones_like(alpha))
    row, col = LIGHT[0] - top, LIGHT[1] - top
    profile = DECODE[out[row, col - 40 : col + 41, 1]].astype(np.float64)
    lit = np.count_nonzero(profile > profile[40] / 2)  # 2R + 1 pixels are lit
    return (lit - 1) / 2


def test_subject_reference_gives_both_crops_the_same_radius_and_frame_does_not() -> None:
    radii = {
        (name, reference): radius_at_infinity(_crop(size)[1], STRENGTH, reference)
        for name, size in CROPS.items()
        for reference in ("frame", "subject")
    }
    assert radii["tight", "subject"] == radii["loose", "subject"] == pytest.approx(SUBJECT_R)
    assert radii["tight", "frame"] == pytest.approx(0.027 * 500)
    assert radii["loose", "frame"] == pytest.approx(0.027 * 1000)


def test_rendered_discs_match_across_crops_only_with_subject_reference() -> None:
    measured = {
        (name, reference): _measured_radius(size, reference)
        for name, size in CROPS.items()
        for reference in ("frame", "subject")
    }
    assert abs(measured["tight", "subject"] - measured["loose", "subject"]) <= 1.0
    assert abs(measured["tight", "subject"] - SUBJECT_R) <= 1.5
    assert abs(measured["tight", "frame"] - 13.5) <= 1.5
    assert abs(measured["loose", "frame"] - 27.0) <= 1.5


def test_a_headshot_framing_gives_the_frame_radius() -> None:
    """A subject whose √area is 0.7 of the long side is the calibration point."""
    alpha = np.zeros((1000, 800), np.float32)
    alpha[300:1000, 0:700] = 1.0  # √(700 × 700) = 0.7 × 1000
    assert radius_at_infinity(alpha, 50, "subject") == pytest.approx(
        radius_at_infinity(alpha, 50, "frame")
    )


@pytest.mark.parametrize("pixels", [0, 1, 99])
def test_an_empty_or_tiny_matte_falls_back_to_the_frame(pixels: int) -> None:
    alpha = np.zeros((100, 100), np.float32)  # under 1 % of the pixels: no size to go by
    alpha.reshape(-1)[:pixels] = 1.0
    assert radius_at_infinity(alpha, 40, "subject") == radius_at_infinity(alpha, 40, "frame")
    alpha.reshape(-1)[:100] = 1.0  # exactly 1 %: sized by the subject
    assert radius_at_infinity(alpha, 40, "subject") == pytest.approx(0.4 * 0.045 * 10 / 0.7)


def test_unknown_references_are_refused() -> None:
    with pytest.raises(ValueError, match="strength_reference"):
        radius_at_infinity(np.zeros((10, 10), np.float32), 30, "face")
    with pytest.raises(InvalidJob, match="strength reference"):
        BlurParams(strength_reference="face")


def test_frame_is_the_default_and_renders_the_same_bytes() -> None:
    rgb, alpha, _ = _crop(500)
    assert BlurParams().strength_reference == "frame"
    default = render(rgb, alpha, BlurParams(strength=STRENGTH))
    explicit = render(rgb, alpha, BlurParams(strength=STRENGTH, strength_reference="frame"))
    assert np.array_equal(default, explicit)
