"""Matting metrics and the ``blurq eval matting`` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.matting.confidence import Confidence
from workers.matting.evaluation import (
    Score,
    evaluate,
    grad,
    leave_one_out,
    mse,
    pairs,
    sad,
    spearman,
    table,
)


def test_metrics_on_known_values() -> None:
    truth = np.zeros((10, 10), np.float32)
    truth[:, 5:] = 1.0
    assert sad(truth, truth) == mse(truth, truth) == grad(truth, truth) == 0.0
    off = truth.copy()
    off[0, 0] = 0.5
    assert sad(off, truth) == pytest.approx(0.5 / 1000)
    assert mse(off, truth) == pytest.approx(0.25 / 100)
    blurred = cv2.GaussianBlur(truth, (0, 0), 2.0)
    assert grad(blurred, truth) > grad(cv2.GaussianBlur(truth, (0, 0), 0.5), truth) > 0


def make_dataset(folder: Path) -> None:
    (folder / "image").mkdir(parents=True)
    (folder / "alpha").mkdir()
    for number in range(2):
        rgb = np.full((48, 64, 3), 30, np.uint8)
        alpha = np.zeros((48, 64), np.uint8)
        cv2.circle(rgb, (32, 24), 12 + number, (250, 200, 40), -1)
        cv2.circle(alpha, (32, 24), 12 + number, 255, -1)
        cv2.imwrite(str(folder / "image" / f"s{number}.png"), rgb)
        cv2.imwrite(str(folder / "alpha" / f"s{number}.png"), cv2.merge([alpha] * 3))
    cv2.imwrite(str(folder / "image" / "no-truth.png"), np.zeros((8, 8, 3), np.uint8))


def test_evaluate_scores_each_pair(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    assert [name for name, _, _ in pairs(tmp_path)] == ["s0", "s1"]
    sure, unsure = Confidence(0.9, False, {}), Confidence(0.1, True, {})
    perfect = evaluate(tmp_path, lambda rgb: ((rgb.max(axis=2) > 128).astype(np.float32), sure))
    assert [score.sad for score in perfect] == [0.0, 0.0]
    assert [score.confidence for score in perfect] == [0.9, 0.9]
    empty = evaluate(tmp_path, lambda rgb: (np.zeros(rgb.shape[:2], np.float32), unsure))
    assert empty[1].sad > empty[0].sad > 0.4  # a disc of radius 12: about 450 pixels
    lines = table(empty).splitlines()
    assert lines[0].split() == ["image", "SAD/1000", "MSE", "Grad/1000", "conf", "s/img"]
    assert lines[1].split()[4] == "0.100"
    assert lines[-3].startswith("mean") and lines[-2].startswith("median")
    assert lines[-1].startswith("Spearman (1 − confidence, SAD) 0.00 over 2 images")


def test_bad_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image/ and alpha/"):
        pairs(tmp_path)
    rows = table([Score("x", 1.0, 0.1, 2.0, 0.8, 0.5)]).splitlines()  # one row: mean and median
    assert rows[-3].split()[:2] == ["mean", "1.00"] and rows[-2].split()[:2] == ["median", "1.00"]


def test_rank_correlation() -> None:
    errors = [1.0, 5.0, 2.0, 9.0, 4.0]
    assert spearman([0.1, 0.5, 0.2, 0.9, 0.4], errors) == pytest.approx(1.0)  # same order
    assert spearman([0.9, 0.5, 0.8, 0.1, 0.6], errors) == pytest.approx(-1.0)
    # Ties share their mean rank: the ranks (1.5, 1.5, 3) against (1, 2, 3).
    assert spearman([0.0, 0.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(np.sqrt(3) / 2)
    assert spearman([0.5, 0.5, 0.5], [1.0, 2.0, 3.0]) == 0.0  # constant: no ranking at all
    # Leaving out the one pair out of order gives a perfect ranking; leaving out another does not.
    low, high = leave_one_out([0.1, 0.2, 0.3, 0.4, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert high == pytest.approx(1.0) and low < 0.5
    assert leave_one_out([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) is None
    with pytest.raises(ValueError):
        spearman([0.1], [1.0, 2.0])


def test_the_table_reports_the_correlation_and_its_spread() -> None:
    scores = [
        Score(f"i{k}", sad, 0.0, 0.0, 1.0 - sad / 10, 0.1) for k, sad in enumerate([1, 3, 2, 8, 5])
    ]
    last = table(scores).splitlines()[-1]
    assert last == "Spearman (1 − confidence, SAD) 1.00 over 5 images; leaving one out 1.00..1.00"


@pytest.mark.services  # the model weights
def test_eval_command(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "producer.cli",
        "eval",
        "matting",
        str(tmp_path),
        "--model",
        "u2netp",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("model u2netp, 2 images")
    assert [line.split()[0] for line in lines[2:-1]] == ["s0", "s1", "mean", "median"]
    assert all(0.0 <= float(line.split()[1]) < 5.0 for line in lines[2:-1])
    assert all(0.0 <= float(line.split()[4]) <= 1.0 for line in lines[2:-1])  # confidences
    assert lines[-1].startswith("Spearman (1 − confidence, SAD)")
