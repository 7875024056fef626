"""Closed-form matting on the backend's arrays: ``workers.matting.closed_form`` for NumPy and CuPy.

The same algorithm step for step, with the OpenCV version's constants and stencil tables: the
trimap eroded from the alpha, the coarse-to-fine levels, the matting Laplacian's rows of the
unknown pixels, the sparse system over them and its Jacobi-preconditioned conjugate gradients.
What differs is how: erosion and dilation are ``ndimage``'s, with OpenCV's borders (outside
counts as set for an erosion, as unset for a dilation); resizing is ``workers.gpu.resample``'s
(the photo's bytes rounded as OpenCV rounds them); the system is a CSR matrix of the backend's
sparse module; and the conjugate gradients keep their scalars on the device,
reading the convergence test back only every few iterations. The result equals the OpenCV
version's to float rounding.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from workers.arrays import check_photo
from workers.gpu.backend import Array, Backend
from workers.gpu.resample import resize
from workers.matting import covariance
from workers.matting.closed_form import (
    _DEFINITE,
    _EDGE_STEP,
    _EPS,
    _ITERATIONS,
    _LEVELS,
    _MIN_SIDE,
    _PAD,
    _PAIR_OF,
    _PRIOR,
    _PRIOR_FLAT,
    _SLOTS,
    _STENCIL,
    _TOLERANCE,
    _UPPER,
    _WINDOW,
    band_width,
)

# The conjugate gradients read their convergence test back to the host once in this many
# iterations: each read waits for the device, and stopping a few iterations late costs less.
_CHECK_EVERY = 10


def closed_form_refine(backend: Backend, rgb: Array, alpha: Array, levels: int = _LEVELS) -> Array:
    """H×W×3 uint8 photo and its H×W float32 alpha (on the backend) → the alpha re-solved in the
    uncertain band, H×W float32 on the backend."""
    xp = backend.xp
    check_photo(rgb)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the photo {rgb.shape[:2]}")
    height, width = alpha.shape
    subject, background = trimap(backend, alpha, band_width(alpha))
    unknown = ~(subject | background)
    if not bool(unknown.any()):
        return subject.astype(xp.float32)
    guess = alpha
    coarse = levels > 1 and min(height, width) >= 2 * _MIN_SIDE
    if coarse:
        half = (width // 2, height // 2)
        shrunk = resize(backend, alpha, half, "area")
        answer = closed_form_refine(backend, resize(backend, rgb, half), shrunk, levels - 1)
        guess = resize(backend, answer, (width, height), "linear")
    start = xp.where(subject, 1.0, xp.where(background, 0.0, guess)).astype(xp.float64)
    iterations = _ITERATIONS[1] if coarse else _ITERATIONS[0]
    weight = prior_weight(backend, alpha, band_width(alpha))
    return solve(backend, rgb.astype(xp.float64) / 255.0, start, unknown, weight, iterations)


def unknown_pixels(backend: Backend, alpha: Array) -> int:
    """How many pixels closed_form_refine would solve for: its time grows with this count."""
    subject, background = trimap(backend, alpha, band_width(alpha))
    return int(alpha.size) - int(backend.xp.count_nonzero(subject | background))


def prior_weight(backend: Backend, alpha: Array, width: int) -> Array:
    """λ per pixel: _PRIOR within width pixels of an edge of alpha, _PRIOR_FLAT elsewhere."""
    ndimage = backend.ndimage
    # OpenCV's 3×3 dilation and erosion of a float image ignore what is outside: a replicated
    # edge changes neither the maximum nor the minimum
    step = ndimage.grey_dilation(alpha, size=(3, 3), mode="nearest") - ndimage.grey_erosion(
        alpha, size=(3, 3), mode="nearest"
    )
    near = ndimage.binary_dilation(step > _EDGE_STEP, structure=_ellipse(backend, width))
    return backend.xp.where(near, _PRIOR, _PRIOR_FLAT)


def trimap(backend: Backend, alpha: Array, width: int) -> tuple[Array, Array]:
    """Definite subject and definite background masks, each eroded by width pixels."""
    low, high = _DEFINITE
    kernel = _ellipse(backend, width)
    # border_value=1: cv2.erode's default border does not erode from outside the image
    subject = backend.ndimage.binary_erosion(alpha >= high, structure=kernel, border_value=1)
    background = backend.ndimage.binary_erosion(alpha <= low, structure=kernel, border_value=1)
    return subject, background


def solve(
    backend: Backend, image: Array, start: Array, unknown: Array, weight: Array, iterations: int
) -> Array:
    """Minimise αᵀLα + Σ_unknown λ(α − start)², known pixels fixed at start; H×W float32."""
    xp = backend.xp
    height, width = start.shape
    padded = xp.zeros((height + 2 * _PAD, width + 2 * _PAD), bool)
    padded[_PAD:-_PAD, _PAD:-_PAD] = unknown
    rows = xp.flatnonzero(padded)
    coefficients = xp.ascontiguousarray(_laplacian_rows(backend, image, padded, rows).T)
    prior = xp.pad(start, _PAD, mode="edge").ravel()
    lam = xp.pad(weight, _PAD, mode="edge").ravel()[rows]
    system, rhs = _restrict(backend, coefficients, rows, prior, lam, padded)
    prior[rows] = conjugate_gradients(backend, system, rhs, prior[rows], iterations)
    out = prior.reshape(padded.shape)[_PAD:-_PAD, _PAD:-_PAD]
    return xp.clip(out, 0.0, 1.0).astype(xp.float32)


def conjugate_gradients(
    backend: Backend, system: Array, rhs: Array, x: Array, iterations: int
) -> Array:
    """Jacobi-preconditioned conjugate gradients from x, stopped early by _TOLERANCE.

    The iterates are the OpenCV version's: once converged, the step is zero, so the iterations
    run on until the next read of the test (every _CHECK_EVERY) leave x as it was.
    """
    xp = backend.xp
    inverse_diagonal = 1.0 / system.diagonal()
    residual = rhs - system @ x
    direction = inverse_diagonal * residual
    rho = (residual * direction).sum()
    stop = (_TOLERANCE * xp.sqrt((rhs * rhs).sum())) ** 2
    for iteration in range(iterations):
        going = (residual * residual).sum() > stop
        if iteration % _CHECK_EVERY == 0 and not bool(going):
            break
        product = system @ direction
        # where() with a safe divisor: once converged nothing moves, and nothing divides by zero
        step = xp.where(going, rho / xp.where(going, (direction * product).sum(), 1.0), 0.0)
        x = x + step * direction
        residual = residual - step * product
        preconditioned = inverse_diagonal * residual
        rho, previous = (residual * preconditioned).sum(), rho
        ratio = xp.where(going, rho / xp.where(going, previous, 1.0), 0.0)
        direction = preconditioned + ratio * direction
    return x


def _restrict(
    backend: Backend, coefficients: Array, rows: Array, prior: Array, lam: Array, unknown: Array
) -> tuple[Array, Array]:
    """The system over the unknown pixels: L_UU + diag λ, and λ·prior_U − L_UK·alpha_K."""
    xp = backend.xp
    offsets = xp.asarray([dy * unknown.shape[1] + dx for dy, dx in _STENCIL])
    columns = rows[:, None] + offsets[None, :]
    coupled = unknown.ravel()[columns]
    rhs = lam * prior[rows] - xp.where(coupled, 0.0, coefficients * prior[columns]).sum(axis=1)
    coefficients[:, _STENCIL.index((0, 0))] += lam
    count = rows.size
    position = xp.zeros(unknown.size, xp.int32)
    position[rows] = xp.arange(count, dtype=xp.int32)
    indptr = xp.zeros(count + 1, xp.int32)
    indptr[1:] = xp.cumsum(coupled.sum(axis=1))
    system = backend.sparse.csr_matrix(
        (coefficients[coupled], position[columns[coupled]], indptr), shape=(count, count)
    )
    return system, rhs


def _laplacian_rows(backend: Backend, image: Array, unknown: Array, rows: Array) -> Array:
    """Matting-Laplacian coefficients of the unknown pixels (padded grid), 25×N, one per offset."""
    xp = backend.xp
    stride = unknown.shape[1]
    near = backend.ndimage.binary_dilation(unknown, structure=xp.ones((3, 3), bool))
    inside = xp.zeros(unknown.shape, bool)
    inside[_PAD + 1 : -_PAD - 1, _PAD + 1 : -_PAD - 1] = True  # windows wholly inside the photo
    centres = xp.flatnonzero(near & inside)
    offsets = [dy * stride + dx for dy, dx in _WINDOW]
    entries = _window_entries(backend, image, centres, xp.asarray(offsets))
    # a pixel with no window there (at the photo's border) reads the spare zero column
    lookup = xp.full(unknown.size, centres.size, xp.int64)
    lookup[centres] = xp.arange(centres.size)
    slots, pairs = _tables(backend)
    out = xp.zeros((len(_STENCIL), rows.size))
    for p in range(len(_WINDOW)):
        window = lookup[rows - offsets[p]]
        out[slots[p]] += entries[pairs[p][:, None], window[None, :]]
    return out


def _window_entries(backend: Backend, image: Array, centres: Array, offsets: Array) -> Array:
    """δ_pq − affinity_pq of the windows at centres, one row per member pair p ≤ q, 45×(n+1)."""
    xp = backend.xp
    colours = _pad_flat(backend, image)[:, centres[None, :] + offsets[:, None]]  # 3×9×n
    centred = colours - colours.mean(axis=1, keepdims=True)
    covariances = xp.stack([(centred[i] * centred[j]).mean(axis=0) for i, j in covariance.PAIRS])
    regularised = covariances + _EPS / len(_WINDOW) * backend.asarray(covariance.IDENTITY)[:, None]
    z = covariance.whiten(regularised, centred, xp).astype(xp.float32)
    first, second = (backend.asarray(np.array(side)) for side in zip(*_UPPER, strict=True))
    dot = z[0, first] * z[0, second] + z[1, first] * z[1, second] + z[2, first] * z[2, second]
    entries = xp.zeros((len(_UPPER), centres.size + 1), xp.float32)
    same = (first == second).astype(xp.float32)[:, None]
    entries[:, :-1] = same - (1.0 + dot) / len(_WINDOW)
    return entries


def _pad_flat(backend: Backend, x: Array) -> Array:
    """Edge-pad an H×W×C array by _PAD and lay it out channels first, C×(H+2P)(W+2P)."""
    padded = backend.xp.pad(x, ((_PAD, _PAD), (_PAD, _PAD), (0, 0)), mode="edge")
    return backend.xp.ascontiguousarray(padded.reshape(-1, x.shape[2]).T)


@functools.lru_cache(maxsize=32)
def _ellipse(backend: Backend, width: int) -> Array:
    """OpenCV's elliptic structuring element reaching width pixels each side, on the backend."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return backend.asarray(kernel.astype(bool))


@functools.lru_cache(maxsize=4)
def _tables(backend: Backend) -> tuple[list[Array], list[Array]]:
    """The stencil slots and member pairs of each window member, on the backend."""
    return [backend.asarray(s) for s in _SLOTS], [backend.asarray(p) for p in _PAIR_OF]
