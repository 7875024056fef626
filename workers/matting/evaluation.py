"""Matting quality against ground-truth mattes, with the matting literature's metrics.

A dataset folder holds ``image/NAME.png`` (or .jpg) and ``alpha/NAME.png`` (the ground truth, one
channel or three equal ones). Over the whole image, with alpha in 0..1:

- SAD/1000 = Σ|α − gt| / 1000
- MSE = mean (α − gt)²
- Grad/1000 = Σ (|∇α| − |∇gt|)² / 1000, gradients by 3×3 Sobel
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

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_METRICS = ("sad", "mse", "grad", "seconds")


@dataclass(frozen=True)
class Score:
    """One image's metrics and the seconds its matte took."""

    name: str
    sad: float
    mse: float
    grad: float
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
    folder: Path, predict: Callable[[NDArray[np.uint8]], NDArray[np.float32]]
) -> list[Score]:
    """Score a matting function on every image of a dataset folder."""
    scores = []
    for name, image_path, alpha_path in pairs(folder):
        rgb = _read_rgb(image_path)
        truth = _read_alpha(alpha_path, rgb.shape[:2])
        begin = time.perf_counter()
        alpha = predict(rgb)
        seconds = time.perf_counter() - begin
        metrics = sad(alpha, truth), mse(alpha, truth), grad(alpha, truth)
        scores.append(Score(name, *metrics, seconds))
    return scores


def table(scores: list[Score]) -> str:
    """A plain-text table: one row per image, then mean and median."""
    lines = [f"{'image':12} {'SAD/1000':>9} {'MSE':>8} {'Grad/1000':>10} {'s/img':>7}"]
    for score in scores:
        lines.append(_row(score.name, score.sad, score.mse, score.grad, score.seconds))
    for label, reduce in (("mean", statistics.fmean), ("median", statistics.median)):
        values = [reduce([getattr(s, field) for s in scores]) for field in _METRICS]
        lines.append(_row(label, *values))
    return "\n".join(lines)


def _row(name: str, sad: float, mse: float, grad: float, seconds: float) -> str:
    return f"{name:12} {sad:9.2f} {mse:8.4f} {grad:10.2f} {seconds:7.2f}"


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
