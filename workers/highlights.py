"""Bright lights blurred at full detail, so their discs keep crisp edges on photos of any size.

``workers.bokeh`` blurs the background on grids small enough to keep the cost flat; on a big photo
at low strength a cell of such a grid is several pixels wide, and so is the edge of every disc.
Only bright lights show that edge (blurred texture has no edge to see), and lights are few, so they
are blurred apart: on the tiles that hold them, at an integer reduction that keeps the aperture's
radius at least 8 px there, then added to the rest. Blur is linear, so the sum is the same picture
with sharp discs, at a cost that follows the lights' area, not the photo's.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

KERNEL_RADIUS = 8.0  # smallest radius at which a rasterised disc or polygon keeps its shape
_TILE = 64  # tile side in cells of the reduced grid

Window = Callable[[slice, slice], NDArray[np.float32]]


def blur_highlights(
    into: NDArray[np.float32],
    cover: NDArray[np.float32],
    light: NDArray[np.float32],
    lit: NDArray[np.uint8],
    radius: Window,
    radii: list[float],
    layers: list[int],
    kernel: Callable[[float], NDArray[np.float32]],
) -> None:
    """Add the lights' blur, divided by cover, into the full-size linear image ``into``.

    ``light`` is the lights' premultiplied linear colour (zero elsewhere), ``lit`` marks where it
    may be non-zero, ``radius(rows, cols)`` each pixel's blur radius, ``layers`` which of
    the layers of ``radii`` to render (each pixel is mixed from the two around its radius), and
    ``kernel(r)`` the normalised aperture of radius r.
    """
    h, w = lit.shape
    counts = np.asarray(cv2.integral(lit), np.int32)  # lit pixels in any window in four look-ups
    for k in layers:
        step = max(1, int(radii[k] // KERNEL_RADIUS))  # an integer: every tile reduces alike
        aperture = kernel(radii[k] / step)
        reach = (aperture.shape[0] // 2 + 1) * step  # input beyond a tile that reaches into it
        side = _TILE * step
        for y0 in range(0, h, side):
            for x0 in range(0, w, side):
                rows, cols = slice(y0, min(h, y0 + side)), slice(x0, min(w, x0 + side))
                window = _window(rows, cols, reach, step, (h, w))
                if _count(counts, *window) == 0:
                    continue
                share = _share(radius(rows, cols), radii, k)
                if share is None:
                    continue
                blurred = _blur_window(light[window], aperture, step)
                inner = blurred[y0 - window[0].start :, x0 - window[1].start :]
                inner = inner[: share.shape[0], : share.shape[1]]
                into[rows, cols] += inner * (share / cover[rows, cols])[..., None]


def _window(
    rows: slice, cols: slice, reach: int, step: int, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """The tile grown by reach on each side, starting on a multiple of step, within the image."""
    y0 = max(0, rows.start - reach) // step * step
    x0 = max(0, cols.start - reach) // step * step
    return slice(y0, min(shape[0], rows.stop + reach)), slice(x0, min(shape[1], cols.stop + reach))


def _count(counts: NDArray[np.int32], rows: slice, cols: slice) -> int:
    """Number of marked pixels in the window, from the integral image."""
    a, b, c, d = rows.start, rows.stop, cols.start, cols.stop
    return int(counts[b, d] - counts[a, d] - counts[b, c] + counts[a, c])


def _share(radius: NDArray[np.float32], radii: list[float], k: int) -> NDArray[np.float32] | None:
    """Layer k's weight per pixel (linear in the radius between layers), or None where all 0."""
    if len(radii) == 1:
        return np.ones_like(radius)
    pos = (np.clip(radius, radii[0], radii[-1]) - radii[0]) / (radii[1] - radii[0])
    share = np.clip(1.0 - np.abs(pos - k), 0.0, 1.0)
    return share if share.any() else None


def _blur_window(
    colour: NDArray[np.float32], aperture: NDArray[np.float32], step: int
) -> NDArray[np.float32]:
    """Reduce by step (block mean), blur with the aperture, enlarge back bilinearly."""
    h, w = colour.shape[:2]
    if step > 1:  # zeros past the image's end: light from outside the frame is none
        colour = np.pad(colour, ((0, -h % step), (0, -w % step), (0, 0)))
        cells = (colour.shape[1] // step, colour.shape[0] // step)
        colour = np.asarray(cv2.resize(colour, cells, interpolation=cv2.INTER_AREA), np.float32)
    blurred = cv2.filter2D(colour, -1, aperture, borderType=cv2.BORDER_CONSTANT)
    if step > 1:
        size = (blurred.shape[1] * step, blurred.shape[0] * step)
        blurred = cv2.resize(blurred, size, interpolation=cv2.INTER_LINEAR)
    return np.asarray(blurred, np.float32)[:h, :w]
