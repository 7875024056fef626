"""Reduced grids read at full size: bilinear enlargement of windows and of single pixels.

The blur is computed on grids smaller than the photo; several stages need the enlarged grid only
in a few places (around point lights, at clipped pixels, at soft matte pixels). ``Enlarge`` gives
exactly what ``cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)`` gives there, without
enlarging the rest.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class _Axis(NamedTuple):
    """Bilinear sampling along one axis: the input samples around each output position."""

    lo: NDArray[np.intp]
    hi: NDArray[np.intp]
    frac: NDArray[np.float32]  # weight of hi


class Enlarge:
    """Windows of grids enlarged bilinearly to a full size, without enlarging the rest.

    ``Enlarge(grid_shape, shape).window(grid, rows, cols)`` equals
    ``cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)[rows, cols]`` to float rounding.
    """

    def __init__(self, grid_shape: tuple[int, int], shape: tuple[int, int]) -> None:
        self._axes = [
            _linear_axis(n_in, n_out) for n_in, n_out in zip(grid_shape, shape, strict=True)
        ]

    def window(self, grid: NDArray[np.float32], rows: slice, cols: slice) -> NDArray[np.float32]:
        """The enlarged single-channel grid at rows and cols of the full size."""
        first_y, along_y = _linear_weights(self._axes[0], rows)
        first_x, along_x = _linear_weights(self._axes[1], cols)
        block = grid[first_y : first_y + along_y.shape[1], first_x : first_x + along_x.shape[1]]
        return np.asarray(along_y @ block @ along_x.T, np.float32)

    def at(
        self, grid: NDArray[np.float32], ys: NDArray[np.intp], xs: NDArray[np.intp]
    ) -> NDArray[np.float32]:
        """The enlarged single-channel grid at the pixels (ys, xs) of the full size."""
        (y0, y1, fy), (x0, x1, fx) = (
            (axis.lo[i], axis.hi[i], axis.frac[i])
            for axis, i in zip(self._axes, (ys, xs), strict=True)
        )
        top = grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx
        bottom = grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx
        return np.asarray(top * (1 - fy) + bottom * fy, np.float32)


def _linear_axis(n_in: int, n_out: int) -> _Axis:
    """For each of n_out positions: the input samples before and after it, and the fraction."""
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.intp)
    return _Axis(lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32))


def _linear_weights(axis: _Axis, span: slice) -> tuple[int, NDArray[np.float32]]:
    """Interpolation matrix of the positions in span: first input index and weights."""
    lo, hi, frac = axis.lo[span], axis.hi[span], axis.frac[span]
    first = int(lo[0])
    weights = np.zeros((lo.size, int(hi[-1]) - first + 1), np.float32)
    at = np.arange(lo.size)
    weights[at, lo - first] = 1.0 - frac
    weights[at, hi - first] += frac  # hi = lo only at the end, where frac = 0
    return first, weights
