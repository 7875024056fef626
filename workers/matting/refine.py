"""A model's low-resolution alpha → the photo's full resolution, re-solved at its edges.

The alpha is upsampled edge-aware (upsample.py) to a working resolution: the photo's own, or a
long side of ``_WORK_SIDE``, smaller still when its uncertain band would exceed ``_MAX_UNKNOWN``
pixels. There its wide regions of mid alpha, the network's doubt rather than edges, are decided from
the photo's colours where they clearly can be (doubt.py); then its uncertain band is re-solved by
closed-form matting (closed_form.py), and that answer is upsampled the same way to full resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_photo, resize, scaled_size
from workers.matting.closed_form import band_width, closed_form_refine, unknown_pixels
from workers.matting.doubt import resolve_doubt
from workers.matting.upsample import refine_upsample

# Long side of the closed-form solve, the resolution its figures were measured at; larger photos
# are solved shrunk to it (its time grows with the pixels of the band).
_WORK_SIDE = 800
# At most this many unknown pixels in the solve (about 30 % of an 800×600 image), so that its time
# is bounded: a photo with more hair or fur than that is solved at a smaller working size.
_MAX_UNKNOWN = 150_000


def refine(alpha_lowres: NDArray[np.float32], rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A model's low-resolution alpha → rgb's H×W float32, re-solved by closed-form matting."""
    return refine_with_decided(alpha_lowres, rgb)[0]


def refine_with_decided(
    alpha_lowres: NDArray[np.float32], rgb: NDArray[np.uint8]
) -> tuple[NDArray[np.float32], float]:
    """refine's alpha, and the share of the subject (Σα) whose alpha doubt.py decided by colour."""
    check_photo(rgb)
    height, width = rgb.shape[:2]
    work = resize(rgb, working_size(width, height))
    upsampled = refine_upsample(alpha_lowres, work)
    solved, decided = solve(upsampled, work, (width, height), lambda size: resize(rgb, size))
    # The solve ran at a working resolution: it comes to full size like the model's alpha.
    full = solved if solved.shape == rgb.shape[:2] else refine_upsample(solved, rgb)
    return full, decided


def working_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) a width×height photo is upsampled to and its doubt decided at."""
    return scaled_size(width, height, _working_scale(width, height))


def solve(
    upsampled: NDArray[np.float32],
    work: NDArray[np.uint8],
    full_size: tuple[int, int],
    photo_at: Callable[[tuple[int, int]], NDArray[np.uint8]],
) -> tuple[NDArray[np.float32], float]:
    """The working-resolution steps: doubt decided, then the closed-form solve; and the share.

    ``upsampled`` is the model's alpha at ``work``'s size; ``photo_at(size)`` gives the photo (of
    ``full_size``) resized, for when the band is too large to solve at ``work``'s size.
    """
    alpha, decided = decide(upsampled, work)
    size = capped_size(full_size, unknown_pixels(alpha))
    if size is not None:
        work, alpha = photo_at(size), resize(alpha, size)
    return closed_form_refine(work, alpha), decided


def decide(
    upsampled: NDArray[np.float32], work: NDArray[np.uint8]
) -> tuple[NDArray[np.float32], float]:
    """The alpha with its doubt decided (doubt.py), and the share of the subject (Σα) it changed."""
    alpha = resolve_doubt(upsampled, work, band_width(upsampled))
    changed = float(np.abs(alpha - upsampled).sum())
    return alpha, changed / max(float(upsampled.sum()), float(alpha.sum()), 1.0)


def capped_size(full_size: tuple[int, int], unknown: int) -> tuple[int, int] | None:
    """The (width, height) to solve at when the band exceeds _MAX_UNKNOWN pixels, else None."""
    if unknown <= _MAX_UNKNOWN:
        return None
    # The band's width is relative to the image, so its pixels shrink with the scale squared.
    scale = _working_scale(*full_size) * math.sqrt(_MAX_UNKNOWN / unknown)
    return scaled_size(*full_size, scale)


def _working_scale(width: int, height: int) -> float:
    """The working resolution over the photo's: 1 up to a long side of _WORK_SIDE."""
    return min(1.0, _WORK_SIDE / max(height, width))
