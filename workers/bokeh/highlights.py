"""The highlight boost: energy the sensor clipped, given back to small clipped lights only.

A blown light (a lamp, the sun on chrome) was brighter than the sensor's white; blurred at its
clipped value it becomes a grey smudge, where a lens draws a bright disc. So clipped pixels are
boosted in linear light, up to ``_HIGHLIGHT_GAIN`` at 255. Only clipped ones (max channel above
``_CLIP_START``): a wall at 245 was not clipped, and a lens keeps its brightness. And only small
ones: a clipped sky or backdrop is a large area whose true level is unknown and whose blur is
itself, so a clipped pixel is boosted in proportion to how dark its surroundings are (the mean
linear level of a window a few percent of the long side across, the pixel's own area included):
fully where they average under ``_DARK``, not at all over ``_BRIGHT``. A light is small against
that window, so it keeps its boost; a clipped area fills the window and keeps its level.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import f32, resize, scaled_size
from workers.bokeh.enlarge import Enlarge
from workers.colour import DECODE

_CLIP_START = 250  # max-channel byte above which a pixel counts as clipped (JPEG scatters 255)
_HIGHLIGHT_GAIN = 6.0  # linear gain of a fully clipped pixel: blown lights are ~2.5 stops hotter
_SURROUND = 0.015  # half side of the window around a clipped pixel, as a fraction of the long side
_MIN_SURROUND = 8  # ... and at least this many pixels
_CELLS = 4  # cells per half side of the window on the grid its mean is taken on
_DARK, _BRIGHT = 0.1, 0.5  # linear mean of the window: full boost under, none over
_SAMPLED_MAX = 0.02  # share of clipped pixels up to which their surroundings are read one by one

_ramp = np.clip((np.arange(256) - _CLIP_START) / (255 - _CLIP_START), 0, 1)
GAIN = (1 + (_HIGHLIGHT_GAIN - 1) * _ramp * _ramp * (3 - 2 * _ramp)).astype(np.float32)
"""Linear gain of a clipped pixel in dark surroundings, by its max channel's byte: 1 up to 250."""


def highlight_gain(peak: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The H×W float32 linear gain of each pixel, from its H×W max channel ``peak`` (uint8)."""
    gain = f32(cv2.LUT(peak, GAIN))
    found = cv2.findNonZero((peak > _CLIP_START).view(np.uint8))
    if found is None:
        return gain
    h, w = peak.shape
    share = _dark_share(peak)
    if found.shape[0] > _SAMPLED_MAX * peak.size:  # many clipped pixels: enlarge it all
        boost = resize(share, (w, h), cv2.INTER_LINEAR)
        return f32((gain - 1.0) * boost + 1.0)
    points = found.reshape(-1, 2).astype(np.intp)
    ys, xs = points[:, 1], points[:, 0]
    boost = Enlarge(share.shape, (h, w)).at(share, ys, xs)
    gain[ys, xs] = (gain[ys, xs] - 1.0) * boost + 1.0
    return gain


def _dark_share(peak: NDArray[np.uint8]) -> NDArray[np.float32]:
    """How dark each pixel's surroundings are, 1 to 0, on a grid of _CELLS per window half side.

    Cells are averaged in sRGB bytes, then decoded: cheaper than averaging in linear light, and
    for a darkness test close enough (a small light's own brightness counts less than it would).
    """
    h, w = peak.shape
    half = max(_MIN_SURROUND, _SURROUND * max(h, w))
    grid = scaled_size(w, h, min(1.0, _CELLS / half))
    level = DECODE[resize(peak, grid, cv2.INTER_AREA)]
    cells = 2 * round(half * grid[0] / w) + 1
    level = f32(cv2.blur(level, (cells, cells), borderType=cv2.BORDER_REFLECT))
    t = np.clip((level - np.float32(_DARK)) / np.float32(_BRIGHT - _DARK), 0.0, 1.0)
    return f32(1.0 - t * t * (3.0 - 2.0 * t))  # smoothstep from 1 (dark) to 0 (bright)
