"""The matting stage: RGB photo in, alpha matte of its subject out, at full resolution.

The models run at their own square input size (ISNet 1024², U²-Net-p 320²; both were trained on
images stretched to that square, so the aspect ratio is not kept). ``fusion``, the default, takes
``max(ISNet, core)`` where ``core`` is U²-Net-p's thresholded, eroded and blurred interior: ISNet
has the best edges but is sometimes under-confident inside large subjects, U²-Net-p's interior is
robust, and an eroded core cannot reach the edges ISNet draws.

The low-resolution alpha comes back to full resolution edge-aware (``refine_upsample``): a colour
guided filter (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013) is fitted at the matte's own
resolution, with the photo shrunk to that size as the guide, and its linear coefficients are
upsampled and applied to the full-resolution pixels ("Fast Guided Filter", He & Sun 2015), only in
the band where the alpha is uncertain. Fitting where the model's alpha is sharp, rather than on a
resized (already blurred) alpha, is what lets edges come back sharper than a plain resize.

``refine`` does this twice around a closed-form matting solve (closed_form.py): the alpha is
brought to a working resolution (the photo's own, or a long side of ``_WORK_SIDE``, smaller still
when its uncertain band would exceed ``_MAX_UNKNOWN`` pixels), re-solved in that band from the
photo's colours, and that answer is brought to full resolution.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.jobs import MATTING_MODELS
from infra.models import ModelStore
from workers.matting.closed_form import closed_form_refine, unknown_pixels
from workers.matting.sessions import ModelSession, get_session

# Bumped whenever the stage's output changes for the same input; part of Matting.version.
_REVISION = 5

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Fusion core, relative to the U²-Net-p map's side: erosion keeps the core off the subject's
# edges (U²-Net-p's 320² edges are soft and a few pixels wide), the blur makes it fade in.
_CORE_THRESHOLD = 0.5
_CORE_ERODE = 0.01
_CORE_BLUR = 0.006

# Long side of the closed-form solve (closed_form.py), the resolution its figures were measured
# at; larger photos are solved shrunk to it (its time grows with the pixels of the band).
_WORK_SIDE = 800
# At most this many unknown pixels in the solve (about 30 % of an 800×600 image), so that its time
# is bounded: a photo with more hair or fur than that is solved at a smaller working size.
_MAX_UNKNOWN = 150_000

# Guided-filter upsampling: window radius in pixels of the matte's resolution. The smallest
# window keeps the local colour model local (a wider one picks up texture).
_RADIUS = 1
# Regularisation of the filter on a 0..1 guide: smaller follows image edges more closely.
_EPS = 1e-4
# Alpha outside (low, high) counts as confident and is kept as the plain resize gives it.
_CONFIDENT = (0.01, 0.99)
# Above this share of uncertain pixels the model is evaluated on whole strips of rows (of _STRIP
# rows each) rather than gathered pixel by pixel: about where the two cost the same.
_DENSE_SHARE = 0.25
_STRIP = 256


class Matting:
    """Finds the subject: an alpha matte at full resolution."""

    def __init__(self, model: str, store: ModelStore, *, threads: int = 0) -> None:
        if model not in MATTING_MODELS:
            raise ValueError(f"unknown matting model {model!r}; choose one of {MATTING_MODELS}")
        self.model = model
        self._store = store
        self._threads = threads

    @property
    def version(self) -> str:
        """Identifies the weights and the algorithm; equal versions give equal mattes."""
        names = ("isnet", "u2netp") if self.model == "fusion" else (self.model,)
        pins = "+".join(self._store.spec(name).sha256[:12] for name in names)
        return f"{self.model}-{pins}-r{_REVISION}"

    def predict(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """H×W×3 uint8 RGB → H×W float32 alpha in [0, 1] (1 = subject)."""
        _check_rgb(rgb)
        return refine(self.predict_lowres(rgb), rgb)

    def predict_lowres(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """The model's square alpha (1024² for isnet and fusion, 320² for u2netp), in [0, 1]."""
        _check_rgb(rgb)
        if self.model == "u2netp":
            return u2netp_alpha(self._session("u2netp"), rgb)
        isnet = isnet_alpha(self._session("isnet"), rgb)
        if self.model == "isnet":
            return isnet
        return fuse(isnet, u2netp_alpha(self._session("u2netp"), rgb))

    def _session(self, name: str) -> ModelSession:
        return get_session(name, self._store, self._threads)


def isnet_alpha(session: ModelSession, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """ISNet's S×S alpha of an RGB image; the model's output is already in 0..1."""
    square = _resize(rgb, session.input_size, session.input_size).astype(np.float32)
    alpha: NDArray[np.float32] = session.run(_nchw((square - 128.0) / 256.0))[0, 0]
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def u2netp_alpha(session: ModelSession, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """U²-Net-p's S×S saliency map of an RGB image, min-max normalised to 0..1."""
    square = _resize(rgb, session.input_size, session.input_size).astype(np.float32)
    tensor = _nchw((square / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD)
    saliency: NDArray[np.float32] = session.run(tensor)[0, 0]
    low, high = float(saliency.min()), float(saliency.max())
    if high - low < 1e-6:  # a flat map has no subject in it, not a subject everywhere
        return np.zeros(saliency.shape, np.float32)
    return ((saliency - low) / (high - low)).astype(np.float32)


def fuse(isnet: NDArray[np.float32], u2netp: NDArray[np.float32]) -> NDArray[np.float32]:
    """max(ISNet, U²-Net-p core): the core is thresholded, eroded and blurred, then resized."""
    side = max(u2netp.shape)
    erode = max(1, round(_CORE_ERODE * side))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    core = cv2.erode((u2netp >= _CORE_THRESHOLD).astype(np.float32), kernel)
    core = cv2.GaussianBlur(core, (0, 0), sigmaX=max(0.5, _CORE_BLUR * side))
    core = cv2.resize(core, (isnet.shape[1], isnet.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.maximum(isnet, core)


def refine(alpha_lowres: NDArray[np.float32], rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """A model's low-resolution alpha → rgb's H×W, re-solved by closed-form matting at its edges."""
    _check_rgb(rgb)
    height, width = rgb.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(height, width))
    work = rgb if scale == 1.0 else _resize(rgb, *_scaled(width, height, scale))
    alpha = refine_upsample(alpha_lowres, work)
    unknown = unknown_pixels(alpha)
    if unknown > _MAX_UNKNOWN:
        # The band's width is relative to the image, so its pixels shrink with the scale squared.
        size = _scaled(width, height, scale * math.sqrt(_MAX_UNKNOWN / unknown))
        work, alpha = _resize(rgb, *size), _resize(alpha, *size)
    solved = closed_form_refine(work, alpha)
    # The solve ran at a working resolution: it comes to full size like the model's alpha.
    return solved if solved.shape == rgb.shape[:2] else refine_upsample(solved, rgb)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def refine_upsample(
    alpha_lowres: NDArray[np.float32], rgb: NDArray[np.uint8]
) -> NDArray[np.float32]:
    """Resize a low-resolution alpha to rgb's H×W, following rgb's edges where alpha is unsure."""
    _check_rgb(rgb)
    if alpha_lowres.ndim != 2 or alpha_lowres.size == 0:
        raise ValueError(f"alpha must be a non-empty 2-D array, got shape {alpha_lowres.shape}")
    height, width = rgb.shape[:2]
    lowres = np.clip(alpha_lowres.astype(np.float32), 0.0, 1.0)
    guide = _resize(rgb, lowres.shape[1], lowres.shape[0]).astype(np.float32) / 255.0
    coefficients = _guided_coefficients(guide, lowres, _RADIUS, _EPS)
    band = _uncertain_band(lowres, 2 * _RADIUS)
    out = _apply_at_full_resolution(coefficients, band, _resize(lowres, width, height), rgb)
    return np.clip(out, 0.0, 1.0, out=out)


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
            sampled = _remap(coefficients, grid_x, grid_y).reshape(-1, 4)
            model = _linear(sampled, rgb[rows].reshape(-1, 3)).reshape(grid_x.shape)
            np.copyto(coarse[rows], model, where=band_full[rows].view(bool))
        return coarse
    # Otherwise sample only the band (flat indices: one-axis gathers cost half of row-column
    # pairs), which keeps 12 MP photos from materialising four full-size float planes.
    index = np.flatnonzero(band_full)
    if index.size == 0:
        return coarse
    rows_of, cols_of = np.divmod(index, width)
    sampled = _sample(coefficients, map_x[cols_of], map_y[rows_of])
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


def _remap(
    image: NDArray[np.float32], map_x: NDArray[np.float32], map_y: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear samples of image at the points of the 2-D maps, edges replicated."""
    out = cv2.remap(
        image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(out, np.float32)


def _sample(
    image: NDArray[np.float32], map_x: NDArray[np.float32], map_y: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear samples of an H×W×C image at N points, as N×C."""
    # cv2.remap wants 2-D maps of bounded size; fold the N points into rows.
    count, width = map_x.size, 4096
    rows = -(-count // width)
    padded_x = np.zeros(rows * width, np.float32)
    padded_y = np.zeros(rows * width, np.float32)
    padded_x[:count], padded_y[:count] = map_x, map_y
    out = _remap(image, padded_x.reshape(rows, width), padded_y.reshape(rows, width))
    return out.reshape(rows * width, image.shape[2])[:count]


def _guided_coefficients(
    guide: NDArray[np.float32], target: NDArray[np.float32], radius: int, eps: float
) -> NDArray[np.float32]:
    """Mean coefficients (a_r, a_g, a_b, b) of the colour guided filter, H×W×4."""

    def mean(x: NDArray[np.float32]) -> NDArray[np.float32]:
        size = (2 * radius + 1, 2 * radius + 1)
        return np.asarray(cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT), np.float32)

    # Colour planes one by one: interleaving them into H×W×6 stacks cost more than the filtering.
    planes = [np.ascontiguousarray(guide[..., c]) for c in range(3)]
    mean_i = [mean(plane) for plane in planes]
    mean_p = mean(target)
    cov_ip = [mean(plane * target) - m * mean_p for plane, m in zip(planes, mean_i, strict=True)]
    var = [mean(planes[i] * planes[j]) - mean_i[i] * mean_i[j] for i, j in _PAIRS]
    a = _solve_symmetric3(var, cov_ip, eps)
    b = mean_p - a[0] * mean_i[0] - a[1] * mean_i[1] - a[2] * mean_i[2]
    return mean(np.asarray(cv2.merge([*a, b]), np.float32))


# Upper triangle of a 3×3 symmetric matrix, in the order _solve_symmetric3 reads it.
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _solve_symmetric3(
    var: list[NDArray[np.float32]], rhs: list[NDArray[np.float32]], eps: float
) -> list[NDArray[np.float32]]:
    """Solve (Σ + εI)·a = rhs per pixel, Σ given as its six upper-triangle planes; Cramer's rule."""
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


def _uncertain_band(alpha: NDArray[np.float32], reach: int) -> NDArray[np.bool_]:
    """Pixels whose alpha is neither ≈0 nor ≈1, grown by reach pixels."""
    low, high = _CONFIDENT
    unsure = ((alpha > low) & (alpha < high)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(unsure, kernel).astype(bool)


def _resize(image: NDArray[Any], width: int, height: int) -> NDArray[Any]:
    """Resize with area averaging when shrinking (no aliasing) and bilinear when enlarging."""
    shrinking = width <= image.shape[1] and height <= image.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _nchw(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """H×W×3 → contiguous 1×3×H×W float32, the layout the models take."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def _check_rgb(rgb: NDArray[np.uint8]) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array, got {getattr(rgb, 'dtype', type(rgb))}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
