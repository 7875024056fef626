"""Matte confidence: how far a matte can be trusted, from signals available at run time.

The signals, each in 0..1:

- ``doubt``: the share of the subject (Σα) that is mid alpha (0.15..0.85) more than an edge band
  from the matte's confident parts: a network that could not tell what a region is.
- ``area``: the subject's share of the frame (mean α); an empty or near-empty matte found nothing.
- ``border``: the share of the frame's outermost pixels the subject covers (α ≥ 0.5); a subject
  along most of the border is usually the background taken for the subject.
- ``decided`` (models only): the share of the subject whose alpha was decided from colour
  (doubt.py): the network did not know, and a colour model is a guess, if a good one.
- ``disagreement`` (``fusion`` only): 1 − IoU of ISNet's and U²-Net-p's subjects (α ≥ 0.5).

Each signal becomes a factor in 0..1 on a linear ramp, from 1 where the signal is harmless down to
a floor where the matte is suspect (``_RAMPS``); the confidence is their product, and a matte under
``REVIEW_BELOW`` is flagged for review. The ramps were set from what the signals mean and checked on
the development set, not fitted to it: docs/matting.md has the reasoning and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import resize, scaled_size

# A matte below this confidence is flagged for a person to look at.
REVIEW_BELOW = 0.5

# Signals are measured on the matte shrunk to this long side: enough for regions, and cheap.
_SIDE = 256
# Mid alpha, and the edge band (fraction of the long side) mid alpha may fill without doubt.
_MID = (0.15, 0.85)
_BAND = 0.015
# Subject pixels for area-free signals (border contact, the networks' agreement).
_SUBJECT = 0.5

# (signal, harmless at or below, suspect at or above, factor when suspect). A ramp that falls with
# the signal has its levels in decreasing order.
_RAMPS = (
    ("doubt", 0.02, 0.20, 0.2),
    ("decided", 0.05, 0.35, 0.3),
    ("disagreement", 0.20, 0.80, 0.3),
    ("border", 0.40, 1.00, 0.2),
    ("area", 0.80, 1.00, 0.3),  # the whole frame taken as subject
    ("area", 0.02, 0.002, 0.0),  # nothing found
)


@dataclass(frozen=True)
class Confidence:
    """A matte's confidence in 0..1, whether it needs review, and the signals it came from."""

    value: float
    review: bool
    signals: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        """confidence, review and signals, as a JSON object or a record holds them."""
        return {"confidence": self.value, "review": self.review, "signals": dict(self.signals)}


def score_matte(alpha: NDArray[np.float32]) -> Confidence:
    """The confidence of any H×W float32 matte in [0, 1], from the matte alone."""
    return combine(matte_signals(alpha))


def matte_signals(alpha: NDArray[np.float32]) -> dict[str, float]:
    """The signals that need only the matte: doubt, area and border."""
    if alpha.ndim != 2 or alpha.size == 0 or alpha.dtype != np.float32:
        raise ValueError(f"a matte must be a non-empty H x W float32 array, got {alpha.shape}")
    height, width = alpha.shape
    small = resize(alpha, scaled_size(width, height, min(1.0, _SIDE / max(height, width))))
    low, high = _MID
    mid = ((small > low) & (small < high)).view(np.uint8)
    band = _BAND * max(small.shape)
    wide = cv2.distanceTransform(mid, cv2.DIST_L2, 3) > band
    mass = float(small.sum())
    ring = np.concatenate([small[0], small[-1], small[1:-1, 0], small[1:-1, -1]])
    return {
        "doubt": float(np.count_nonzero(wide)) / max(mass, 1.0),
        "area": mass / small.size,
        "border": float(np.mean(ring >= _SUBJECT)),
    }


def disagreement(first: NDArray[np.float32], second: NDArray[np.float32]) -> float:
    """1 − IoU of two networks' subjects (α ≥ 0.5), compared at the smaller map's size."""
    height, width = min(first.shape, second.shape, key=lambda shape: shape[0] * shape[1])
    masks = [resize(alpha, (width, height)) >= _SUBJECT for alpha in (first, second)]
    union = np.count_nonzero(masks[0] | masks[1])
    if union == 0:
        return 0.0  # both found nothing: they agree, and the area signal says the rest
    return 1.0 - float(np.count_nonzero(masks[0] & masks[1])) / union


def combine(signals: dict[str, float]) -> Confidence:
    """The confidence from named signals; a signal that is absent does not lower it."""
    value = 1.0
    for name, harmless, suspect, floor in _RAMPS:
        if name in signals:
            value *= _ramp(signals[name], harmless, suspect, floor)
    rounded = round(value, 3)
    kept = {name: round(float(level), 4) for name, level in signals.items()}
    return Confidence(value=rounded, review=rounded < REVIEW_BELOW, signals=kept)


def _ramp(level: float, harmless: float, suspect: float, floor: float) -> float:
    """1 at or before harmless, floor at or beyond suspect, linear between."""
    progress = min(max((level - harmless) / (suspect - harmless), 0.0), 1.0)
    return 1.0 - (1.0 - floor) * progress
