"""Per-pixel 3×3 colour covariances, each stored as its six upper-triangle planes.

Both the guided filter (upsample.py) and the matting Laplacian (closed_form.py) need Σ⁻¹ of a
symmetric 3×3 matrix at every pixel or window; numpy's batched linear algebra would copy the
planes into N×3×3 stacks, so the few formulas are written out here, one plane at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The channel pairs (i, j), i ≤ j, of the six planes, in the order everything here reads them.
PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
# The identity matrix as six planes, in that order.
IDENTITY = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0])


def linear_fit(
    planes: list[NDArray[np.float32]],
    target: NDArray[np.float32],
    mean: Callable[[NDArray[np.float32]], NDArray[np.float32]],
    eps: float,
) -> list[NDArray[np.float32]]:
    """The colour guided filter's per-window least squares: the planes (a_r, a_g, a_b, b) of
    target ≈ a·I + b, the guide I given as its three colour planes, ``mean`` the window mean.

    Arithmetic only, so that the GPU path runs it on CuPy arrays with a mean of its own.
    """
    mean_i = [mean(plane) for plane in planes]
    mean_p = mean(target)
    cov_ip = [mean(plane * target) - m * mean_p for plane, m in zip(planes, mean_i, strict=True)]
    var = [mean(planes[i] * planes[j]) - mean_i[i] * mean_i[j] for i, j in PAIRS]
    a = solve(var, cov_ip, eps)
    return [*a, mean_p - a[0] * mean_i[0] - a[1] * mean_i[1] - a[2] * mean_i[2]]


def solve(
    var: list[NDArray[np.float32]], rhs: list[NDArray[np.float32]], eps: float
) -> list[NDArray[np.float32]]:
    """Solve (Σ + εI)·a = rhs per pixel, Σ given as its six planes; Cramer's rule."""
    rr, rg, rb, gg, gb, bb = var
    rr, gg, bb = rr + eps, gg + eps, bb + eps
    # Adjugate of the symmetric matrix; its determinant stays ≥ ε³ > 0.
    inv_rr, inv_rg, inv_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    inv_gg, inv_gb, inv_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    scale = 1.0 / (rr * inv_rr + rg * inv_rg + rb * inv_rb)
    x, y, z = rhs
    return [
        (inv_rr * x + inv_rg * y + inv_rb * z) * scale,
        (inv_rg * x + inv_gg * y + inv_gb * z) * scale,
        (inv_rb * x + inv_gb * y + inv_bb * z) * scale,
    ]


def whiten(upper: NDArray[np.float64], x: NDArray[np.float64], xp: Any = np) -> NDArray[np.float64]:
    """C⁻¹x per window, C the Cholesky factor of the 6×n planes; x is 3×9×n, so is the result.

    ``xp`` is the arrays' namespace (NumPy, or CuPy on the GPU path).
    """
    rr, rg, rb, gg, gb, bb = upper
    c11 = xp.sqrt(rr)
    c21, c31 = rg / c11, rb / c11
    c22 = xp.sqrt(gg - c21 * c21)
    c32 = (gb - c31 * c21) / c22
    c33 = xp.sqrt(bb - c31 * c31 - c32 * c32)
    z1 = x[0] / c11
    z2 = (x[1] - c21 * z1) / c22
    z3 = (x[2] - c31 * z1 - c32 * z2) / c33
    return xp.stack([z1, z2, z3])  # type: ignore[no-any-return]
