"""Matte confidence: signals on synthetic mattes, the models' confidence, ``blurq matte --json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from skimage import data

from infra.models import ModelStore
from infra.params import MATTING_MODELS
from infra.settings import Settings
from workers.matting.confidence import (
    REVIEW_BELOW,
    Confidence,
    combine,
    disagreement,
    matte_signals,
    score_matte,
)
from workers.matting.models import Matting

HEIGHT, WIDTH = 600, 800


def _subject() -> NDArray[np.float32]:
    """A clean matte: an ellipse standing on the bottom edge, soft-edged by a few pixels."""
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (400, 420), (200, 260), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    return np.asarray(cv2.GaussianBlur(alpha, (0, 0), 2.0), np.float32)


def test_a_clean_subject_is_trusted() -> None:
    confidence = score_matte(_subject())
    assert confidence.value == 1.0 and not confidence.review
    assert confidence.signals["doubt"] == 0.0
    assert 0.15 < confidence.signals["area"] < 0.4
    assert 0.0 < confidence.signals["border"] < 0.2  # it stands on the bottom edge


def test_a_wide_region_of_mid_alpha_lowers_it() -> None:
    alpha = _subject()
    small = alpha.copy()
    small[280:400, 340:460] = 0.4  # 120 px across: some doubt
    large = alpha.copy()
    large[250:500, 260:540] = 0.4  # most of the subject
    values = [score_matte(matte) for matte in (alpha, small, large)]
    assert values[0].value > values[1].value > values[2].value
    assert values[2].review and values[2].signals["doubt"] > 0.3


def test_a_soft_edge_is_not_doubt() -> None:
    """Hair all round: a soft edge 1 % of the image wide does not count as doubt."""
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (400, 300), (200, 200), 0, 0, 360, 1.0, -1)
    soft = np.asarray(cv2.GaussianBlur(alpha, (0, 0), 4.0), np.float32)
    assert score_matte(soft).signals["doubt"] == 0.0


@pytest.mark.parametrize("level", [0.0, 0.001])
def test_an_empty_matte_needs_review(level: float) -> None:
    confidence = score_matte(np.full((HEIGHT, WIDTH), level, np.float32))
    assert confidence.value == 0.0 and confidence.review


def test_a_subject_along_most_of_the_border_lowers_it() -> None:
    alpha = _subject()
    framed = alpha.copy()
    framed[:, :60] = framed[:, -60:] = framed[:40] = 1.0  # left, right and top edges too
    plain, bordered = score_matte(alpha), score_matte(framed)
    assert bordered.signals["border"] > 0.8
    assert bordered.value < plain.value and bordered.review
    everything = score_matte(np.ones((HEIGHT, WIDTH), np.float32))
    assert everything.value < bordered.value


def test_the_networks_disagreement() -> None:
    alpha = _subject()
    assert disagreement(alpha, alpha) == 0.0
    other = np.zeros_like(alpha)
    other[:, :400] = 1.0
    assert 0.5 < disagreement(alpha, other) < 1.0
    small = cv2.resize(alpha, (320, 320), interpolation=cv2.INTER_AREA)  # another map size
    assert disagreement(alpha, small) < 0.05
    assert disagreement(np.zeros_like(alpha), np.zeros_like(alpha)) == 0.0
    agreed, disputed = combine({"disagreement": 0.1}), combine({"disagreement": 0.9})
    assert agreed.value == 1.0 and disputed.value < REVIEW_BELOW and disputed.review


def test_a_matte_mostly_decided_by_colour_needs_review() -> None:
    values = [combine({"decided": share}).value for share in (0.0, 0.05, 0.2, 0.5)]
    assert values[0] == values[1] == 1.0 > values[2] > REVIEW_BELOW > values[3]


def test_the_confidence_is_rounded_and_keeps_its_signals() -> None:
    confidence = combine({"doubt": 0.1234567, "area": 0.3})
    assert confidence.value == round(confidence.value, 3) and 0.0 < confidence.value < 1.0
    assert confidence.signals == {"doubt": 0.1235, "area": 0.3}
    assert confidence.review == (confidence.value < REVIEW_BELOW)
    record = confidence.as_dict()
    assert record == {
        "confidence": confidence.value,
        "review": False,
        "signals": confidence.signals,
    }
    assert json.loads(json.dumps(record)) == record  # plain floats: a JSON object as it is


def test_the_signals_of_a_large_matte_come_from_a_small_copy() -> None:
    big = cv2.resize(_subject(), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    assert matte_signals(big) == pytest.approx(matte_signals(_subject()), abs=0.01)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float64), np.zeros((4, 4, 1), np.float32), np.zeros((0, 4))]
)
def test_bad_mattes_are_refused(bad: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="matte"):
        score_matte(bad)  # type: ignore[arg-type]


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("model", MATTING_MODELS)
def test_models_give_the_same_alpha_with_a_confidence(model: str) -> None:
    matting = Matting(model, ModelStore(Settings().model_dir))
    rgb = data.astronaut()
    alpha, confidence = matting.predict_with_confidence(rgb)
    assert np.array_equal(alpha, matting.predict(rgb))
    assert isinstance(confidence, Confidence) and 0.0 <= confidence.value <= 1.0
    assert not confidence.review  # a clear portrait
    assert ("disagreement" in confidence.signals) == (model == "fusion")
    assert confidence.signals["decided"] < 0.05  # little of a clear portrait is left to colour


@pytest.mark.services  # the model weights
def test_matte_json_prints_one_object_per_input(tmp_path: Path) -> None:
    photo, blank, broken = tmp_path / "astronaut.png", tmp_path / "blank.png", tmp_path / "x.png"
    Image.fromarray(data.astronaut()).save(photo)
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)  # nothing to find
    broken.write_bytes(b"not an image")
    argv = [sys.executable, "-m", "producer.cli", "matte", photo, blank, broken, "--out"]
    argv += [tmp_path / "out", "--json", "--model", "u2netp"]
    result = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1  # one input failed
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(o["input"]).name for o in objects] == ["astronaut.png", "blank.png", "x.png"]
    first, second, third = objects
    assert Path(first["output"]).is_file() and first["review"] is False
    assert second["review"] is True and second["confidence"] < first["confidence"]
    assert set(first["signals"]) == {"doubt", "area", "border", "decided"}
    assert third["output"] is None and third["error"]
