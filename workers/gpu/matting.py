"""The matting stage on the backend's arrays: ``workers.matting.Matting``'s mattes, made on the GPU.

``DeviceMatting`` takes a ``Matting`` (its model, weights and sessions) and runs the same steps
where the backend's arrays are: the networks' input resized, normalised and laid out as NCHW;
the networks through ``ModelSession.run_on_device`` (on CuPy, onnxruntime's I/O binding: the
tensor and the map never leave the GPU); their fusion; the guided upsampling of the map to the
working resolution and of the solved alpha to the photo's (``workers.gpu.upsample``). So the
full-resolution matte is made on the device and goes to the renderer without leaving it.

The closed-form solve runs on the device too (``workers.gpu.closed_form``, a sparse system in the
backend's sparse module), as does the test whether the working alpha has any wide mid-alpha
region for the doubt decision (``workers.matting.doubt``) to look at. What is left on the host:
that decision itself (k-means palettes, region labelling), only when the test finds a region
deep enough that it may be wide, with one copy of the working photo and its alpha down and of the
decided alpha up, each at most 800 px on its long side. Otherwise only scalars come back: the
test's answer, the band's pixel count, the lengths of the index arrays the solve gathers (CuPy
reads a length back to size an array), and the conjugate gradients' convergence test once in
ten iterations.

The confidence comes from the same signals as ``Matting.predict_with_confidence``, computed by
the same functions (``matte_signals``, ``disagreement``, ``combine``) on host copies of small
arrays: the matte shrunk on the device to the long side the signals are measured at (which
``matte_signals`` would shrink it to itself), and the networks' maps shrunk to the smaller one's
size, as ``disagreement`` compares them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from workers.arrays import check_photo, scaled_size
from workers.gpu.backend import Array, Backend
from workers.gpu.closed_form import closed_form_refine, unknown_pixels
from workers.gpu.resample import resize
from workers.gpu.upsample import refine_upsample
from workers.matting.closed_form import band_width
from workers.matting.confidence import _SIDE, Confidence, combine, disagreement, matte_signals
from workers.matting.doubt import _MID, _WIDE
from workers.matting.models import (
    CORE_THRESHOLD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ISNET_SCALE,
    ISNET_SHIFT,
    Matting,
    core_shaping,
)
from workers.matting.refine import capped_size, working_size
from workers.matting.refine import decide as refine_decide
from workers.matting.sessions import ModelSession

# OpenCV's 3×3 chamfer steps 0.955 along an axis and 1.3693 diagonally: over a Euclidean length it
# runs at most √(0.955² + (1.3693 − 0.955)²) ≈ 1.0415 times as long; rounded up for its fixed point.
_CHAMFER_EXCESS = 1.05


class DeviceMatting:
    """Finds the subject, as ``Matting`` does, with the arrays on the backend."""

    def __init__(self, matting: Matting, backend: Backend) -> None:
        self.matting = matting
        self.backend = backend

    @property
    def version(self) -> str:
        """The CPU path's version: the same weights and algorithm, equal to float rounding."""
        return self.matting.version

    def predict(self, rgb: Array) -> Array:
        """H×W×3 uint8 RGB (host or backend) → H×W float32 alpha in [0, 1] on the backend."""
        rgb = self._photo(rgb)
        return refine_with_decided(self.backend, self._fused(self._networks(rgb)), rgb)[0]

    def predict_with_confidence(self, rgb: Array) -> tuple[Array, Confidence]:
        """predict's alpha and its confidence, from the signals ``Matting`` uses."""
        rgb = self._photo(rgb)
        networks = self._networks(rgb)
        alpha, decided = refine_with_decided(self.backend, self._fused(networks), rgb)
        signals = matte_signals(self._signal_size(alpha))
        signals["decided"] = decided
        if len(networks) == 2:
            signals["disagreement"] = disagreement(*self._at_smaller_size(networks))
        return alpha, combine(signals)

    def _photo(self, rgb: Array) -> Array:
        """The photo on the backend, checked."""
        rgb = self.backend.asarray(rgb)
        check_photo(rgb)
        return rgb

    def _networks(self, rgb: Array) -> list[Array]:
        """The square maps of the networks the model uses: [ISNet, U²-Net-p] for fusion."""
        runs = {"isnet": isnet_alpha, "u2netp": u2netp_alpha}
        return [
            runs[name](self.backend, self.matting.session(name, self.backend), rgb)
            for name in self.matting.networks
        ]

    def _fused(self, networks: list[Array]) -> Array:
        """The one map of a single network; the fusion of two."""
        return networks[0] if len(networks) == 1 else fuse(self.backend, *networks)

    def _signal_size(self, alpha: Array) -> NDArray[np.float32]:
        """The matte on the host at the size ``matte_signals`` measures it at."""
        height, width = alpha.shape
        size = scaled_size(width, height, min(1.0, _SIDE / max(height, width)))
        return self.backend.asnumpy(resize(self.backend, alpha, size))

    def _at_smaller_size(self, maps: list[Array]) -> list[NDArray[np.float32]]:
        """The maps on the host, the larger shrunk to the smaller's size, as disagreement does."""
        height, width = min((m.shape for m in maps), key=lambda shape: shape[0] * shape[1])
        return [self.backend.asnumpy(resize(self.backend, m, (width, height))) for m in maps]


def refine_with_decided(backend: Backend, alpha_lowres: Array, rgb: Array) -> tuple[Array, float]:
    """``workers.matting.refine.refine_with_decided`` with the photo on the backend: the alpha at
    rgb's H×W on the backend, and the share of the subject decided by colour."""
    rgb = backend.asarray(rgb)
    height, width = check_photo(rgb)
    work = resize(backend, rgb, working_size(width, height))
    alpha, decided = decide(backend, refine_upsample(backend, alpha_lowres, work), work)
    size = capped_size((width, height), unknown_pixels(backend, alpha))
    if size is not None:
        work, alpha = resize(backend, rgb, size), resize(backend, alpha, size)
    solved = closed_form_refine(backend, work, alpha)
    if solved.shape == (height, width):
        return solved, decided
    return refine_upsample(backend, solved, rgb), decided


def decide(backend: Backend, upsampled: Array, work: Array) -> tuple[Array, float]:
    """``workers.matting.refine.decide`` on the backend's arrays: the alpha with its doubt decided
    and the share changed; on the host only when there may be a wide region to decide."""
    if not may_doubt(backend, upsampled, band_width(upsampled)):
        return upsampled, 0.0
    alpha, decided = refine_decide(backend.asnumpy(upsampled), backend.asnumpy(work))
    return backend.asarray(alpha), decided


def may_doubt(backend: Backend, alpha: Array, band: int) -> bool:
    """False when ``doubt.wide_regions`` would find no region; True when it may find one.

    Its depth is OpenCV's 3×3 chamfer distance, which exceeds the Euclidean one by less than
    _CHAMFER_EXCESS; a region with no pixel deeper than _WIDE bands by the Euclidean distance over
    that factor has none deeper than _WIDE bands by the chamfer one.
    """
    xp = backend.xp
    low, high = _MID
    mid = (alpha > low) & (alpha < high)
    depth = backend.ndimage.distance_transform_edt(mid)
    # with no pixel outside mid alpha OpenCV finds every pixel deep; the EDT has nothing to measure
    deep = xp.logical_or(mid.all(), (depth > _WIDE * band / _CHAMFER_EXCESS).any())
    return bool(deep)


def isnet_alpha(backend: Backend, session: ModelSession, rgb: Array) -> Array:
    """ISNet's S×S alpha of an RGB photo, on the backend; the model's output is already in 0..1."""
    xp = backend.xp
    side = session.input_size
    square = resize(backend, rgb, (side, side)).astype(xp.float32)
    tensor = _nchw(backend, (square - ISNET_SHIFT) / ISNET_SCALE)
    alpha = session.run_on_device(backend, tensor)[0, 0]
    return xp.clip(alpha, 0.0, 1.0).astype(xp.float32)


def u2netp_alpha(backend: Backend, session: ModelSession, rgb: Array) -> Array:
    """U²-Net-p's S×S saliency map of an RGB photo, min-max normalised to 0..1, on the backend."""
    xp = backend.xp
    side = session.input_size
    square = resize(backend, rgb, (side, side)).astype(xp.float32)
    mean, std = backend.asarray(IMAGENET_MEAN), backend.asarray(IMAGENET_STD)
    saliency = session.run_on_device(backend, _nchw(backend, (square / 255.0 - mean) / std))[0, 0]
    low, span = saliency.min(), saliency.max() - saliency.min()
    # a flat map has no subject in it, not a subject everywhere; where() keeps the test on the
    # device instead of reading the span back to the host
    normalised = (saliency - low) / xp.maximum(span, 1e-6)
    return xp.where(span < 1e-6, 0.0, normalised).astype(xp.float32)


def fuse(backend: Backend, isnet: Array, u2netp: Array) -> Array:
    """``workers.matting.models.fuse`` on the backend: max(ISNet, U²-Net-p's shaped core)."""
    xp, ndimage = backend.xp, backend.ndimage
    kernel, sigma = core_shaping(max(u2netp.shape))
    core = (u2netp >= CORE_THRESHOLD).astype(xp.float32)
    # beyond the edge counts as core, as cv2.erode's default border does
    footprint = backend.asarray(kernel.astype(bool))
    core = ndimage.grey_erosion(core, footprint=footprint, mode="constant", cval=1.0)
    # OpenCV's kernel for a float image reaches round(4σ) pixels each side (its size rounded odd);
    # mirror is its default border, BORDER_REFLECT_101
    radius = (round(sigma * 8 + 1) | 1) // 2
    core = ndimage.gaussian_filter(core, sigma, mode="mirror", truncate=radius / sigma)
    core = resize(backend, core, (isnet.shape[1], isnet.shape[0]), "linear")
    return xp.maximum(isnet, core)


def _nchw(backend: Backend, image: Array) -> Array:
    """H×W×3 → contiguous 1×3×H×W float32, the layout the models take."""
    xp = backend.xp
    return xp.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=xp.float32)
