"""Closed-form matting in the uncertain band of a network's alpha.

A trimap is drawn from the network alpha: definite subject where it is ≈1, definite background
where it is ≈0 (both eroded by a band whose width is relative to the image), unknown elsewhere,
including every soft pixel. In the unknown band the alpha is solved again with the matting
Laplacian (Levin, Lischinski, Weiss, "A Closed-Form Solution to Natural Image Matting", TPAMI
2008; 3×3 windows): it minimises αᵀLα + λ|α − α₀|² with the definite pixels fixed, so alpha follows
the local colour lines of the photo, and the network alpha α₀ is both a weak prior and the start
of the conjugate-gradient solve.

Only rows of the unknown pixels are built. With 3×3 windows a pixel is coupled to its 5×5
neighbourhood, so the system is stored as 25 coefficients per unknown pixel, one per offset.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse as sparse
from numpy.typing import NDArray

from workers.matting import covariance

# Regularisation of each window's colour covariance (colours in 0..1): small keeps edges sharp.
_EPS = 1e-6
# Weight of the network alpha in the unknown region: small near its edges, so colour decides
# where the subject ends; larger where it is flat but partial (a veil, glass), whose colours
# alone would pull it towards 0 or 1.
_PRIOR = 1e-4
_PRIOR_FLAT = 1e-1
# Alpha varying by more than this within 3×3 pixels marks an edge of the network alpha.
_EDGE_STEP = 0.05
# Alpha at or beyond these counts as definite background / subject before erosion.
_DEFINITE = (0.05, 0.95)
# Definite regions are eroded by this fraction of the image's long side: the unknown band.
_BAND = 0.0075
# Coarse-to-fine: the band is first solved at 1/2^k resolution, where conjugate gradients
# propagate across it in few iterations, and each finer level starts from the coarser answer.
_LEVELS = 3
_MIN_SIDE = 64
# Conjugate-gradient iterations at the coarsest level and at each finer one; each level starts
# close to its answer, so the solves stop early.
_ITERATIONS = (100, 30)
_TOLERANCE = 1e-6

_WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_STENCIL = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
_PAD = 2
# Pairs of window members p ≤ q (the affinity is symmetric) and, for member p, the pair of each
# q and the stencil slot of q's offset from p.
_UPPER = [(p, q) for p in range(len(_WINDOW)) for q in range(p, len(_WINDOW))]
_PAIR_OF = [np.array([_UPPER.index((min(p, q), max(p, q))) for q in range(9)]) for p in range(9)]
_SLOTS = [
    np.array([_STENCIL.index((qy - py, qx - px)) for qy, qx in _WINDOW]) for py, px in _WINDOW
]


def closed_form_refine(
    rgb: NDArray[np.uint8], alpha: NDArray[np.float32], levels: int = _LEVELS
) -> NDArray[np.float32]:
    """H×W×3 uint8 photo and its H×W float32 alpha → the alpha re-solved in the uncertain band."""
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the photo {rgb.shape[:2]}")
    height, width = alpha.shape
    subject, background = trimap(alpha, band_width(alpha))
    unknown = ~(subject | background)
    if not unknown.any():
        return subject.astype(np.float32)
    guess = alpha
    coarse = levels > 1 and min(height, width) >= 2 * _MIN_SIDE
    if coarse:
        half = (width // 2, height // 2)
        shrunk = np.asarray(cv2.resize(alpha, half, interpolation=cv2.INTER_AREA), np.float32)
        small = np.asarray(cv2.resize(rgb, half, interpolation=cv2.INTER_AREA), np.uint8)
        answer = closed_form_refine(small, shrunk, levels - 1)
        guess = np.asarray(cv2.resize(answer, (width, height)), np.float32)
    start = np.where(subject, 1.0, np.where(background, 0.0, guess)).astype(np.float64)
    iterations = _ITERATIONS[1] if coarse else _ITERATIONS[0]
    weight = prior_weight(alpha, band_width(alpha))
    return solve(rgb.astype(np.float64) / 255.0, start, unknown, weight, iterations)


def unknown_pixels(alpha: NDArray[np.float32]) -> int:
    """How many pixels closed_form_refine would solve for: its time grows with this count."""
    subject, background = trimap(alpha, band_width(alpha))
    return int(alpha.size) - int(np.count_nonzero(subject | background))


def band_width(alpha: NDArray[np.float32]) -> int:
    """Erosion of the definite regions in pixels: _BAND of the long side."""
    return max(1, round(_BAND * int(max(alpha.shape))))


def prior_weight(alpha: NDArray[np.float32], width: int) -> NDArray[np.float64]:
    """λ per pixel: _PRIOR within width pixels of an edge of alpha, _PRIOR_FLAT elsewhere."""
    square = np.ones((3, 3), np.uint8)
    step = np.asarray(cv2.dilate(alpha, square), np.float32) - np.asarray(cv2.erode(alpha, square))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    near = np.asarray(cv2.dilate((step > _EDGE_STEP).view(np.uint8), kernel), bool)
    return np.where(near, _PRIOR, _PRIOR_FLAT)


def trimap(alpha: NDArray[np.float32], width: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Definite subject and definite background masks, each eroded by width pixels."""
    low, high = _DEFINITE
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    subject = cv2.erode((alpha >= high).astype(np.uint8), kernel).astype(bool)
    background = cv2.erode((alpha <= low).astype(np.uint8), kernel).astype(bool)
    return subject, background


def solve(
    image: NDArray[np.float64],
    start: NDArray[np.float64],
    unknown: NDArray[np.bool_],
    weight: NDArray[np.float64],
    iterations: int,
) -> NDArray[np.float32]:
    """Minimise αᵀLα + Σ_unknown λ(α − start)², known pixels fixed at start; H×W float32."""
    height, width = start.shape
    padded = np.zeros((height + 2 * _PAD, width + 2 * _PAD), bool)
    padded[_PAD:-_PAD, _PAD:-_PAD] = unknown
    rows = np.flatnonzero(padded)
    coefficients = np.ascontiguousarray(_laplacian_rows(image, padded, rows).T)
    prior = np.pad(start, _PAD, mode="edge").ravel()
    lam = np.pad(weight, _PAD, mode="edge").ravel()[rows]
    system, rhs = _restrict(coefficients, rows, prior, lam, padded)
    prior[rows] = conjugate_gradients(system, rhs, prior[rows], iterations)
    out = prior.reshape(padded.shape)[_PAD:-_PAD, _PAD:-_PAD]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def conjugate_gradients(
    system: sparse.csr_matrix, rhs: NDArray[np.float64], x: NDArray[np.float64], iterations: int
) -> NDArray[np.float64]:
    """Jacobi-preconditioned conjugate gradients from x, stopped early by _TOLERANCE."""
    # Written out rather than scipy's cg: its dot products go to a multi-threaded BLAS, which on
    # a busy 2-core worker doubled the CPU time and the wall time of the solve.
    inverse_diagonal = 1.0 / system.diagonal()
    residual = rhs - system @ x
    direction = inverse_diagonal * residual
    rho = float((residual * direction).sum())
    stop = (_TOLERANCE * float(np.sqrt((rhs * rhs).sum()))) ** 2
    for _ in range(iterations):
        if float((residual * residual).sum()) <= stop:
            break
        product = system @ direction
        step = rho / float((direction * product).sum())
        x = x + step * direction
        residual = residual - step * product
        preconditioned = inverse_diagonal * residual
        rho, previous = float((residual * preconditioned).sum()), rho
        direction = preconditioned + (rho / previous) * direction
    return x


def _restrict(
    coefficients: NDArray[np.float64],
    rows: NDArray[np.intp],
    prior: NDArray[np.float64],
    lam: NDArray[np.float64],
    unknown: NDArray[np.bool_],
) -> tuple[sparse.csr_matrix, NDArray[np.float64]]:
    """The system over the unknown pixels: L_UU + diag λ, and λ·prior_U − L_UK·alpha_K."""
    offsets = np.array([dy * unknown.shape[1] + dx for dy, dx in _STENCIL])
    columns = rows[:, None] + offsets[None, :]
    coupled = unknown.ravel()[columns]
    rhs = lam * prior[rows] - np.where(coupled, 0.0, coefficients * prior[columns]).sum(axis=1)
    coefficients[:, _STENCIL.index((0, 0))] += lam
    # Only the entries between unknown pixels are stored: the rest went to the right-hand side,
    # and leaving them out spares the conjugate-gradient products their zeros.
    count = rows.size
    position = np.zeros(unknown.size, np.int32)
    position[rows] = np.arange(count, dtype=np.int32)
    indptr = np.zeros(count + 1, np.int32)
    np.cumsum(coupled.sum(axis=1), out=indptr[1:])
    system = sparse.csr_matrix(
        (coefficients[coupled], position[columns[coupled]], indptr), shape=(count, count)
    )
    return system, rhs


def _laplacian_rows(
    image: NDArray[np.float64], unknown: NDArray[np.bool_], rows: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Matting-Laplacian coefficients of the unknown pixels (padded grid), 25×N, one per offset."""
    stride = unknown.shape[1]
    near = np.asarray(cv2.dilate(unknown.view(np.uint8), np.ones((3, 3), np.uint8)), bool)
    inside = np.zeros(unknown.shape, bool)
    inside[_PAD + 1 : -_PAD - 1, _PAD + 1 : -_PAD - 1] = True  # windows wholly inside the photo
    centres = np.flatnonzero(near & inside)
    offsets = np.array([dy * stride + dx for dy, dx in _WINDOW])
    entries = _window_entries(image, centres, offsets)
    # Each unknown pixel gathers what its nine windows add to its row; a pixel with no window
    # there (at the photo's border) reads the spare zero column.
    lookup = np.full(unknown.size, centres.size, np.intp)
    lookup[centres] = np.arange(centres.size)
    out = np.zeros((len(_STENCIL), rows.size))
    for p in range(len(_WINDOW)):
        window = lookup[rows - offsets[p]]
        out[_SLOTS[p]] += entries[_PAIR_OF[p][:, None], window[None, :]]
    return out


def _window_entries(
    image: NDArray[np.float64], centres: NDArray[np.intp], offsets: NDArray[np.intp]
) -> NDArray[np.float32]:
    """δ_pq − affinity_pq of the windows at centres, one row per member pair p ≤ q, 45×(n+1)."""
    colours = _pad_flat(image)[:, centres[None, :] + offsets[:, None]]  # 3×9×n
    centred = colours - colours.mean(axis=1, keepdims=True)
    covariances = np.stack([(centred[i] * centred[j]).mean(axis=0) for i, j in covariance.PAIRS])
    # Whitened colours z = C⁻¹(I − μ), C the Cholesky factor of Σ + ε/|w|: then
    # (I_p − μ)ᵀ(Σ + ε/|w|)⁻¹(I_q − μ) = z_p·z_q, with no large inverse entries to cancel.
    # Whitened, the products are O(1): float32 holds them to 1e-7 and halves the memory traffic.
    regularised = covariances + _EPS / len(_WINDOW) * covariance.IDENTITY[:, None]
    z = covariance.whiten(regularised, centred).astype(np.float32)
    entries = np.zeros((len(_UPPER), centres.size + 1), np.float32)
    for k, (p, q) in enumerate(_UPPER):
        dot = z[0, p] * z[0, q] + z[1, p] * z[1, q] + z[2, p] * z[2, q]
        entries[k, :-1] = float(p == q) - (1.0 + dot) / len(_WINDOW)
    return entries


def _pad_flat(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Edge-pad an H×W×C array by _PAD and lay it out channels first, C×(H+2P)(W+2P)."""
    padded = np.pad(x, ((_PAD, _PAD), (_PAD, _PAD), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded.reshape(-1, x.shape[2]).T)
