"""Matting quality against ground-truth mattes, with the matting literature's metrics.

A dataset folder holds ``image/NAME.png`` (or .jpg) and ``alpha/NAME.png`` (the ground truth, one
channel or three equal ones). Over the whole image, with alpha in 0..1:

- SAD/1000 = Σ|α − gt| / 1000
- MSE = mean (α − gt)²
- Grad/1000 = Σ (|∇α| − |∇gt|)² / 1000, gradients by 3×3 Sobel

Each matte's confidence (confidence.py) is listed beside its errors, and ``table`` says how well
low confidence finds the worst mattes: Spearman's rank correlation of (1 − confidence) with SAD,
with its range when each image in turn is left out (a few images say little).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.matting.confidence import Confidence

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_METRICS = ("sad", "mse", "grad", "confidence", "seconds")


@dataclass(frozen=True)
class Score:
    """One image's metrics, its matte's confidence and the seconds the matte took."""

    name: str
    sad: float
    mse: float
    grad: float
    confidence: float
    seconds: float


def sad(alpha: NDArray[np.float32], truth: NDArray[np.float32]) -> float:
    """Sum of absolute differences, divided by 1000."""
    return float(np.abs(alpha - truth).sum() / 1000.0)


def mse(alpha: NDArray[np.float32], truth: NDArray[np.float32]) -> float:
    """Mean squared error."""
    return float(np.mean((alpha - truth) ** 2))


def grad(alpha: NDArray[np.float32], truth: NDArray[np.float32]) -> float:
    """Sum of squared differences of Sobel gradient magnitudes, divided by 1000."""
    return float(((_magnitude(alpha) - _magnitude(truth)) ** 2).sum() / 1000.0)


def _magnitude(alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    dx = cv2.Sobel(alpha, cv2.CV_32F, 1, 0, ksize=3)
    dy = cv2.Sobel(alpha, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(np.sqrt(dx * dx + dy * dy), np.float32)


def pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """(name, image, ground truth) for every image that has a matte of the same stem."""
    images = folder / "image"
    alphas = {path.stem: path for path in (folder / "alpha").glob("*")}
    if not images.is_dir() or not alphas:
        raise ValueError(f"{folder} must hold image/ and alpha/ folders")
    found = [
        (path.stem, path, alphas[path.stem])
        for path in sorted(images.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem in alphas
    ]
    if not found:
        raise ValueError(f"no image in {images} has a matte of the same name in {folder / 'alpha'}")
    return found


def evaluate(
    folder: Path, predict: Callable[[NDArray[np.uint8]], tuple[NDArray[np.float32], Confidence]]
) -> list[Score]:
    """Score a matting function, which gives a matte and its confidence, on a dataset folder."""
    scores = []
    for name, image_path, alpha_path in pairs(folder):
        rgb = _read_rgb(image_path)
        truth = _read_alpha(alpha_path, rgb.shape[:2])
        begin = time.perf_counter()
        alpha, confidence = predict(rgb)
        seconds = time.perf_counter() - begin
        metrics = sad(alpha, truth), mse(alpha, truth), grad(alpha, truth)
        scores.append(Score(name, *metrics, confidence.value, seconds))
    return scores


def table(scores: list[Score]) -> str:
    """A plain-text table: one row per image, mean and median, then the rank correlation."""
    lines = [f"{'image':12} {'SAD/1000':>9} {'MSE':>8} {'Grad/1000':>10} {'conf':>6} {'s/img':>7}"]
    for score in scores:
        lines.append(_row(score.name, *(getattr(score, field) for field in _METRICS)))
    for label, reduce in (("mean", statistics.fmean), ("median", statistics.median)):
        values = [reduce([getattr(s, field) for s in scores]) for field in _METRICS]
        lines.append(_row(label, *values))
    doubt = [1.0 - score.confidence for score in scores]
    errors = [score.sad for score in scores]
    rho = spearman(doubt, errors)
    spread = leave_one_out(doubt, errors)
    text = f"Spearman (1 − confidence, SAD) {rho:.2f} over {len(scores)} images"
    if spread is not None:
        text += f"; leaving one out {spread[0]:.2f}..{spread[1]:.2f}"
    lines.append(text)
    return "\n".join(lines)


def spearman(first: list[float], second: list[float]) -> float:
    """Spearman's rank correlation (ties share their mean rank); 0 when either is constant."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} values against {len(second)}")
    ranks = [_ranks(values) for values in (first, second)]
    spreads = [float(np.std(rank)) for rank in ranks]
    if min(spreads) == 0.0:
        return 0.0
    covariance = float(np.mean((ranks[0] - ranks[0].mean()) * (ranks[1] - ranks[1].mean())))
    return covariance / (spreads[0] * spreads[1])


def leave_one_out(first: list[float], second: list[float]) -> tuple[float, float] | None:
    """The lowest and highest Spearman correlation with one pair left out; None under 4 pairs."""
    if len(first) < 4:
        return None
    values = [
        spearman(first[:k] + first[k + 1 :], second[:k] + second[k + 1 :])
        for k in range(len(first))
    ]
    return min(values), max(values)


def _ranks(values: list[float]) -> NDArray[np.float64]:
    """1-based ranks, ties given the mean of the ranks they span."""
    array = np.asarray(values, np.float64)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(1, len(array) + 1)
    for value in np.unique(array):
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _row(name: str, sad: float, mse: float, grad: float, confidence: float, seconds: float) -> str:
    return f"{name:12} {sad:9.2f} {mse:8.4f} {grad:10.2f} {confidence:6.3f} {seconds:7.2f}"


def _read_rgb(path: Path) -> NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def _read_alpha(path: Path, shape: tuple[int, ...]) -> NDArray[np.float32]:
    alpha = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if alpha is None:
        raise ValueError(f"cannot read {path}")
    if alpha.shape != shape:
        raise ValueError(f"{path} is {alpha.shape[::-1]}, its image is {shape[::-1]}")
    return np.asarray(alpha, np.float32) / 255.0
