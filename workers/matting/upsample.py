"""Edge-aware upsampling: a model's low-resolution alpha brought to the photo's resolution.

A colour guided filter (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013) is fitted at the
matte's own resolution, with the photo shrunk to that size as the guide, and its linear
coefficients are upsampled and applied to the full-resolution pixels ("Fast Guided Filter", He &
Sun 2015), only in the band where the alpha is uncertain. Fitting where the model's alpha is sharp,
rather than on a resized (already blurred) alpha, is what lets edges come back sharper than a plain
resize.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_photo, resize
from workers.matting import covariance

# Window radius in pixels of the matte's resolution. The smallest window keeps the local colour
# model local (a wider one picks up texture).
_RADIUS = 1
# Regularisation of the filter on a 0..1 guide: smaller follows image edges more closely.
_EPS = 1e-4
# Alpha outside (low, high) counts as confident and is kept as the plain resize gives it.
_CONFIDENT = (0.01, 0.99)
# Above this share of uncertain pixels the model is evaluated on whole strips of rows (of _STRIP
# rows each) rather than gathered pixel by pixel: about where the two cost the same.
_DENSE_SHARE = 0.25
_STRIP = 256
# cv2.remap wants 2-D maps of bounded size: sample() folds its N points into rows this long.
_FOLD = 4096


def refine_upsample(
    alpha_lowres: NDArray[np.float32], rgb: NDArray[np.uint8]
) -> NDArray[np.float32]:
    """Resize a low-resolution alpha to rgb's H×W, following rgb's edges where alpha is unsure."""
    check_photo(rgb)
    if alpha_lowres.ndim != 2 or alpha_lowres.size == 0:
        raise ValueError(f"alpha must be a non-empty 2-D array, got shape {alpha_lowres.shape}")
    height, width = rgb.shape[:2]
    lowres = np.clip(alpha_lowres.astype(np.float32), 0.0, 1.0)
    guide = resize(rgb, (lowres.shape[1], lowres.shape[0])).astype(np.float32) / 255.0
    coefficients = _guided_coefficients(guide, lowres, _RADIUS, _EPS)
    band = _uncertain_band(lowres, 2 * _RADIUS)
    out = _apply_at_full_resolution(coefficients, band, resize(lowres, (width, height)), rgb)
    return np.clip(out, 0.0, 1.0, out=out)


def remap(
    image: NDArray[np.float32], map_x: NDArray[np.float32], map_y: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear samples of an image at the points of two 2-D maps (of x and y), edges replicated."""
    out = cv2.remap(
        image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, np.float32)


def sample(
    image: NDArray[np.float32], map_x: NDArray[np.float32], map_y: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear samples of an H×W×C float32 image at N ≥ 1 points (x, y), as N×C."""
    count = map_x.size
    rows = -(-count // _FOLD)
    padded_x = np.zeros(rows * _FOLD, np.float32)
    padded_y = np.zeros(rows * _FOLD, np.float32)
    padded_x[:count], padded_y[:count] = map_x, map_y
    out = remap(image, padded_x.reshape(rows, _FOLD), padded_y.reshape(rows, _FOLD))
    return out.reshape(rows * _FOLD, image.shape[2])[:count]


def _apply_at_full_resolution(
    coefficients: NDArray[np.float32],
    band: NDArray[np.bool_],
    coarse: NDArray[np.float32],
    rgb: NDArray[np.uint8],
) -> NDArray[np.float32]:
    """Evaluate the upsampled linear model a·I + b on the full-resolution pixels of the band."""
    height, width = coarse.shape
    band_full = cv2.resize(band.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    # Bilinear samples of the coefficients at pixel centres, in working coordinates.
    work_h, work_w = band.shape
    map_x = (np.arange(width, dtype=np.float32) + 0.5) * np.float32(work_w / width) - 0.5
    map_y = (np.arange(height, dtype=np.float32) + 0.5) * np.float32(work_h / height) - 0.5
    if band.mean() > _DENSE_SHARE:
        # Hair everywhere: whole strips of rows cost less than gathering most of the pixels.
        for top in range(0, height, _STRIP):
            rows = slice(top, top + _STRIP)
            grid_x, grid_y = np.meshgrid(map_x, map_y[rows])
            sampled = remap(coefficients, grid_x, grid_y).reshape(-1, 4)
            model = _linear(sampled, rgb[rows].reshape(-1, 3)).reshape(grid_x.shape)
            np.copyto(coarse[rows], model, where=band_full[rows].view(bool))
        return coarse
    # Otherwise sample only the band (flat indices: one-axis gathers cost half of row-column
    # pairs), which keeps 12 MP photos from materialising four full-size float planes.
    index = np.flatnonzero(band_full)
    if index.size == 0:
        return coarse
    rows_of, cols_of = np.divmod(index, width)
    sampled = sample(coefficients, map_x[cols_of], map_y[rows_of])
    np.put(coarse, index, _linear(sampled, np.take(rgb.reshape(-1, 3), index, axis=0)))
    return coarse


def _linear(sampled: NDArray[np.float32], pixels: NDArray[np.uint8]) -> NDArray[np.float32]:
    """a·I + b per pixel: sampled is N×4 (a_r, a_g, a_b, b), pixels N×3 in 0..255."""
    colour = pixels.astype(np.float32)
    model = sampled[:, 0] * colour[:, 0]
    model += sampled[:, 1] * colour[:, 1]
    model += sampled[:, 2] * colour[:, 2]
    model *= np.float32(1 / 255)
    model += sampled[:, 3]
    return model


def _guided_coefficients(
    guide: NDArray[np.float32], target: NDArray[np.float32], radius: int, eps: float
) -> NDArray[np.float32]:
    """Mean coefficients (a_r, a_g, a_b, b) of the colour guided filter, H×W×4."""

    def mean(x: NDArray[np.float32]) -> NDArray[np.float32]:
        size = (2 * radius + 1, 2 * radius + 1)
        return np.asarray(cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT), np.float32)

    # Colour planes one by one: interleaving them into H×W×6 stacks cost more than the filtering.
    planes = [np.ascontiguousarray(guide[..., c]) for c in range(3)]
    fit = covariance.linear_fit(planes, target, mean, eps)
    return mean(np.asarray(cv2.merge(fit), np.float32))


def _uncertain_band(alpha: NDArray[np.float32], reach: int) -> NDArray[np.bool_]:
    """Pixels whose alpha is neither ≈0 nor ≈1, grown by reach pixels."""
    low, high = _CONFIDENT
    unsure = ((alpha > low) & (alpha < high)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(unsure, kernel).astype(bool)
