"""The matting models: ISNet, U²-Net-p and their fusion, behind ``Matting``.

The models run at their own square input size (ISNet 1024², U²-Net-p 320²; both were trained on
images stretched to that square, so the aspect ratio is not kept). ``fusion``, the default, takes
``max(ISNet, core)`` where ``core`` is U²-Net-p's thresholded, eroded and blurred interior: ISNet
has the best edges but is sometimes under-confident inside large subjects, U²-Net-p's interior is
robust, and an eroded core cannot reach the edges ISNet draws. ``Matting.predict`` brings the
model's square alpha to the photo's full resolution with ``refine`` (refine.py);
``Matting.predict_with_confidence`` also says how far the matte can be trusted (confidence.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from infra.models import ModelStore
from infra.params import MATTING_MODELS
from workers.arrays import check_photo, resize
from workers.matting.confidence import Confidence, combine, disagreement, matte_signals
from workers.matting.refine import refine, refine_with_decided
from workers.matting.sessions import ModelSession, get_session

if TYPE_CHECKING:
    from workers.gpu.backend import Backend

# Bumped whenever the stage's output changes for the same input; part of Matting.version.
_REVISION = 6

# The networks' input: ISNet takes (rgb − ISNET_SHIFT) / ISNET_SCALE, U²-Net-p ImageNet-normalised
# 0..1 colours, (rgb / 255 − IMAGENET_MEAN) / IMAGENET_STD.
ISNET_SHIFT = 128.0
ISNET_SCALE = 256.0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Fusion core, relative to the U²-Net-p map's side: erosion keeps the core off the subject's
# edges (U²-Net-p's 320² edges are soft and a few pixels wide), the blur makes it fade in.
CORE_THRESHOLD = 0.5
_CORE_ERODE = 0.01
_CORE_BLUR = 0.006


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
        pins = "+".join(self._store.spec(name).sha256[:12] for name in self.networks)
        return f"{self.model}-{pins}-r{_REVISION}"

    def predict(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """H×W×3 uint8 RGB → H×W float32 alpha in [0, 1] (1 = subject)."""
        check_photo(rgb)
        return refine(self._fused(self._networks(rgb)), rgb)

    def predict_with_confidence(
        self, rgb: NDArray[np.uint8]
    ) -> tuple[NDArray[np.float32], Confidence]:
        """predict's alpha and its confidence: the matte's own signals, the share of it decided
        by colour, and for fusion the networks' disagreement."""
        check_photo(rgb)
        networks = self._networks(rgb)
        alpha, decided = refine_with_decided(self._fused(networks), rgb)
        signals = matte_signals(alpha)
        signals["decided"] = decided
        if len(networks) == 2:
            signals["disagreement"] = disagreement(*networks)
        return alpha, combine(signals)

    def predict_lowres(self, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        """The model's square alpha (1024² for isnet and fusion, 320² for u2netp), in [0, 1]."""
        check_photo(rgb)
        return self._fused(self._networks(rgb))

    def _networks(self, rgb: NDArray[np.uint8]) -> list[NDArray[np.float32]]:
        """The square maps of the networks this model uses: [ISNet, U²-Net-p] for fusion."""
        runs = {"isnet": isnet_alpha, "u2netp": u2netp_alpha}
        return [runs[name](self.session(name), rgb) for name in self.networks]

    @property
    def networks(self) -> tuple[str, ...]:
        """The networks this model runs, in the order fuse takes them."""
        return ("isnet", "u2netp") if self.model == "fusion" else (self.model,)

    @staticmethod
    def _fused(networks: list[NDArray[np.float32]]) -> NDArray[np.float32]:
        """The one map of a single network; the fusion of two."""
        return networks[0] if len(networks) == 1 else fuse(*networks)

    def session(self, name: str, backend: Backend | None = None) -> ModelSession:
        """The process's session of one of the networks (on the backend's device, if on a GPU)."""
        return get_session(name, self._store, self._threads, backend=backend)


def isnet_alpha(session: ModelSession, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """ISNet's S×S alpha of an RGB image; the model's output is already in 0..1."""
    side = session.input_size
    square = resize(rgb, (side, side)).astype(np.float32)
    alpha: NDArray[np.float32] = session.run(_nchw((square - ISNET_SHIFT) / ISNET_SCALE))[0, 0]
    return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def u2netp_alpha(session: ModelSession, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """U²-Net-p's S×S saliency map of an RGB image, min-max normalised to 0..1."""
    side = session.input_size
    square = resize(rgb, (side, side)).astype(np.float32)
    tensor = _nchw((square / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)
    saliency: NDArray[np.float32] = session.run(tensor)[0, 0]
    low, high = float(saliency.min()), float(saliency.max())
    if high - low < 1e-6:  # a flat map has no subject in it, not a subject everywhere
        return np.zeros(saliency.shape, np.float32)
    return ((saliency - low) / (high - low)).astype(np.float32)


def fuse(isnet: NDArray[np.float32], u2netp: NDArray[np.float32]) -> NDArray[np.float32]:
    """max(ISNet, U²-Net-p core): the core is thresholded, eroded and blurred, then resized."""
    kernel, sigma = core_shaping(max(u2netp.shape))
    core = cv2.erode((u2netp >= CORE_THRESHOLD).astype(np.float32), kernel)
    core = cv2.GaussianBlur(core, (0, 0), sigmaX=sigma)
    core = cv2.resize(core, (isnet.shape[1], isnet.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.maximum(isnet, core)


def core_shaping(side: int) -> tuple[NDArray[np.uint8], float]:
    """The fusion core's erosion kernel (an ellipse) and blur sigma, for a map of this side."""
    erode = max(1, round(_CORE_ERODE * side))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    return np.asarray(kernel, np.uint8), max(0.5, _CORE_BLUR * side)


def _nchw(image: NDArray[np.float32]) -> NDArray[np.float32]:
    """H×W×3 → contiguous 1×3×H×W float32, the layout the models take."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
