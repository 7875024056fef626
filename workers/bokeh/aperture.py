"""The lens aperture as a blur kernel, and the convolution of the blurred layers with it.

``aperture_kernel`` draws an anti-aliased disc or regular N-bladed polygon; ``aperture_corners``
gives the same kernel as its second differences, which are only at its rim, so that a point
light's disc costs in proportion to the radius, not the area (``workers.bokeh.discs``).
``convolve`` applies the kernel with ``cv2.filter2D``, which switches to a DFT for kernels of 130
cells or more: on a 1 MP, 4-channel layer that costs about 50 ms whatever the kernel, while direct
sums over column strips of an 11 x 11 disc cost about 12 ms and of a 13 x 13 disc about 27 ms. So
kernels up to ``_SPLIT_SIDE`` wide are cut into strips under 130 cells, each applied directly,
and the parts summed: the same result, to float rounding.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import cv2
import numpy as np
from numpy.typing import NDArray

_DIRECT_CELLS = 129  # largest kernel area cv2.filter2D sums directly (float images)
_SPLIT_SIDE = 19  # beyond this the strips cost more than the DFT (kernel radius 8 is 17 wide)


def aperture_kernel(radius: float, blades: int | None, rotation_deg: float) -> NDArray[np.float32]:
    """Anti-aliased disc or regular polygon of the given radius, normalised to sum 1.

    The polygon is inscribed in the disc, one corner at ``rotation_deg`` counter-clockwise from
    the right. The kernel is square and odd-sized, with no all-zero outer ring.
    """
    n = math.ceil(radius + 0.5)
    y, x = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float64)
    # rows grow downwards; y up makes the rotation counter-clockwise on screen
    weights = _coverage(x, -y, radius, blades, rotation_deg)
    while weights.shape[0] > 1 and _ring_is_empty(weights):
        weights = weights[1:-1, 1:-1]
    # cv2.filter2D correlates; flipping makes each light spread into the aperture's own shape
    return np.ascontiguousarray((weights / weights.sum())[::-1, ::-1], dtype=np.float32)


class Corners(NamedTuple):
    """An aperture kernel as its second differences: the kernel is their 2D running sum.

    Offsets are from the light, in screen rows (down) and columns (right); ``values`` are
    K[r, c] - K[r, c-1] - K[r-1, c] + K[r-1, c-1] of the normalised kernel K, so that
    ``cv2.integral`` of them scattered around a light draws its disc.
    """

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    values: NDArray[np.float64]


@functools.lru_cache(maxsize=256)
def aperture_corners(radius: float, blades: int | None, rotation_deg: float) -> Corners:
    """The kernel ``aperture_kernel`` draws (unflipped: a light's own shape), as corners.

    The arrays are shared by every call with these arguments, so they are read-only.
    """
    rows, cols, steps = _row_steps(radius, blades, rotation_deg)
    # a row's steps, less the same steps one row down, are the second differences
    side = 2 * math.ceil(radius + 0.5) + 5  # a square holding every offset, centred
    key = np.concatenate([rows, rows + 1]) * side + np.concatenate([cols, cols]) + side // 2
    cells, which = np.unique(key, return_inverse=True)
    values = np.bincount(which, np.concatenate([steps, -steps])).astype(np.float64)
    at = np.flatnonzero(values)  # steps repeated from row to row cancel
    row, col = np.divmod(cells[at], side)
    corners = Corners(row, col - side // 2, values[at])
    for array in corners:
        array.setflags(write=False)
    return corners


def _row_steps(
    radius: float, blades: int | None, rotation_deg: float
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """The normalised kernel's differences from each column to the next, where they are not 0.

    Only the rim is evaluated: on each row, the pixels where the coverage is neither 0 nor 1 (found
    from the shape grown and shrunk by half a pixel), with a pixel of each plain side around them.
    Returns their rows, columns and values.
    """
    n = math.ceil(radius + 0.5)
    rows = np.arange(-n, n + 1)
    y = -rows.astype(np.float64)
    out_lo, out_hi = _row_extent(y, 0.5, radius, blades, rotation_deg)
    in_lo, in_hi = _row_extent(y, -0.5, radius, blades, rotation_deg)
    on = out_lo < out_hi
    rows = rows[on]
    out_lo, out_hi, in_lo, in_hi = (a[on] for a in (out_lo, out_hi, in_lo, in_hi))
    # a rim band starts on a pixel with coverage 0 and ends on one with 1, or the reverse
    left_start, right_end = np.floor(out_lo) - 1, np.ceil(out_hi) + 1
    left_end, right_start = np.ceil(in_lo) + 1, np.floor(in_hi) - 1
    two = (in_lo < in_hi) & (left_end < right_start)  # a row with a full interior between bands
    starts = np.concatenate([left_start, right_start[two]]).astype(np.intp)
    ends = np.concatenate([np.where(two, left_end, right_end), right_end[two]]).astype(np.intp)
    lengths = ends - starts + 1
    firsts = np.cumsum(lengths) - lengths
    x = np.arange(int(lengths.sum())) - np.repeat(firsts - starts, lengths)
    band_rows = np.repeat(np.concatenate([rows, rows[two]]), lengths)
    weights = _coverage(
        x.astype(np.float64), -band_rows.astype(np.float64), radius, blades, rotation_deg
    )
    total = weights.sum() + float(np.sum(right_start[two] - left_end[two] - 1))
    steps = np.diff(weights, prepend=0.0)
    steps[firsts] = 0.0  # a band's first pixel continues the plain side before it: no step
    at = np.flatnonzero(steps)
    return band_rows[at], x[at], steps[at] / total


def _row_extent(
    y: NDArray[np.float64], grow: float, radius: float, blades: int | None, rotation_deg: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """On rows at heights y: the x range (lo, hi) inside the shape grown by ``grow`` pixels.

    A row that misses the shape has lo >= hi. For a polygon, growing moves every side outward.
    """
    if blades is None:
        half_sq = (radius + grow) ** 2 - y * y
        half = np.sqrt(np.maximum(half_sq, 0.0))
        return np.where(half_sq > 0, -half, 0.0), np.where(half_sq > 0, half, 0.0)
    angles = _blade_angles(blades, rotation_deg)
    cos, sin = np.cos(angles), np.sin(angles)
    # inside every side: x * cos + y * sin < reach, solved for x side by side
    reach = radius * math.cos(math.pi / blades) + grow - y[:, None] * sin
    upright = np.abs(cos) < 1e-12  # a side parallel to x bounds y only
    bound = reach / np.where(upright, 1.0, cos)
    lo = np.max(np.where(cos < 0, bound, -np.inf), axis=1, where=~upright, initial=-np.inf)
    hi = np.min(np.where(cos > 0, bound, np.inf), axis=1, where=~upright, initial=np.inf)
    blocked = np.any(upright & (reach <= 0), axis=1)
    return lo, np.where(blocked, lo, hi)


def _blade_angles(blades: int, rotation_deg: float) -> NDArray[np.float64]:
    """The directions of the polygon's sides, one corner at ``rotation_deg``."""
    return math.radians(rotation_deg) + (np.arange(blades) + 0.5) * 2 * math.pi / blades


def _coverage(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    radius: float,
    blades: int | None,
    rotation_deg: float,
) -> NDArray[np.float64]:
    """How much of the pixel centred at (x, y), y up, the disc or polygon covers, 0..1."""
    if blades is None:
        dist = np.hypot(x, y) - radius
    else:  # polygon inscribed in the wide-open disc: distance is the largest side overshoot
        angles = _blade_angles(blades, rotation_deg)
        proj = x[..., None] * np.cos(angles) + y[..., None] * np.sin(angles)
        dist = proj.max(axis=-1) - radius * math.cos(math.pi / blades)
    return np.clip(0.5 - dist, 0.0, 1.0)


def _ring_is_empty(weights: NDArray[np.float64]) -> bool:
    """True when the outermost rows and columns are all zero."""
    return not (weights[[0, -1]].any() or weights[:, [0, -1]].any())


def convolve(image: NDArray[np.float32], aperture: NDArray[np.float32]) -> NDArray[np.float32]:
    """``cv2.filter2D`` of image with the centred aperture, zeros beyond the image's edges."""
    kh, kw = aperture.shape
    if kh * kw <= _DIRECT_CELLS or kw > _SPLIT_SIDE:
        return np.asarray(
            cv2.filter2D(image, -1, aperture, borderType=cv2.BORDER_CONSTANT), np.float32
        )
    h, w = image.shape[:2]
    pad = max(kh, kw) // 2  # every strip's output, wherever its anchor, stays inside
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT)
    total: NDArray[np.float32] | None = None
    for x0 in range(0, kw, _DIRECT_CELLS // kh):
        strip = aperture[:, x0 : x0 + _DIRECT_CELLS // kh]
        rows = np.flatnonzero(strip.any(axis=1))
        if rows.size == 0:
            continue
        strip = np.ascontiguousarray(strip[rows[0] : rows[-1] + 1])
        ay, ax = strip.shape[0] // 2, strip.shape[1] // 2
        part = np.asarray(
            cv2.filter2D(padded, -1, strip, anchor=(ax, ay), borderType=cv2.BORDER_CONSTANT),
            np.float32,
        )
        # strip cell (i, j) is aperture cell (rows[0] + i, x0 + j): shift the output to match
        y, x = pad + int(rows[0]) - kh // 2 + ay, pad + x0 - kw // 2 + ax
        part = part[y : y + h, x : x + w]
        total = (
            part.copy()
            if total is None
            else np.asarray(cv2.add(total, part, dst=total), np.float32)
        )
    return total if total is not None else np.zeros_like(image)
