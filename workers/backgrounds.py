"""E-commerce backgrounds: the cut-out subject over a plain colour, or with transparency.

    foreground F, matte α → α·F + (1−α)·colour (linear light) → rgb, or F with α → rgba

``F`` is the estimated foreground (``workers.matting.estimate_foreground``), not the photo, so
soft edges carry the subject's own colour and no fringe of the old background. The blend is in
linear light like the bokeh composite (``workers.colour``): a grey mix of black hair over white
is as light as the eye expects. Pixels with α = 1 come out unchanged (the sRGB round trip is
exact), pixels with α = 0 are the colour exactly.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_matte
from workers.colour import DECODE, to_srgb

COLOURS = {"white": (255, 255, 255)}
"""The named plain backgrounds; any other colour is given as #rrggbb."""


def parse_colour(background: str) -> tuple[int, int, int]:
    """The sRGB bytes of a named colour or of ``#rrggbb``; ValueError for anything else."""
    if background in COLOURS:
        return COLOURS[background]
    if len(background) != 7 or not background.startswith("#"):
        raise ValueError(f"background colour must be a name or #rrggbb, got {background!r}")
    value = int(background[1:], 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def over_colour(
    foreground: NDArray[np.uint8], alpha: NDArray[np.float32], colour: tuple[int, int, int]
) -> NDArray[np.uint8]:
    """The subject over a plain colour: H×W×3 uint8 sRGB F and H×W float32 α → H×W×3 uint8."""
    check_matte(foreground, alpha, "alpha")
    linear = cv2.LUT(foreground, DECODE)
    plain = DECODE[np.array(colour, np.uint8)]
    weight = alpha[..., None]
    return to_srgb(weight * linear + (1.0 - weight) * plain)


def with_alpha(foreground: NDArray[np.uint8], alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The subject with its matte as alpha: H×W×3 uint8 F and H×W float32 α → H×W×4 uint8 RGBA."""
    check_matte(foreground, alpha, "alpha")
    return np.dstack([foreground, matte_bytes(alpha)])


def matte_bytes(alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """An H×W float32 matte in [0, 1] as H×W uint8 (0..255, rounded)."""
    return np.round(alpha * 255.0).astype(np.uint8)


def cutout(
    foreground: NDArray[np.uint8], alpha: NDArray[np.float32], background: str
) -> NDArray[np.uint8]:
    """The subject over a background other than ``blur``: RGBA for transparent, else RGB."""
    if background == "transparent":
        return with_alpha(foreground, alpha)
    return over_colour(foreground, alpha, parse_colour(background))
