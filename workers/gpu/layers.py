"""The blurred background's layers on the backend's arrays: blur, blend by radius, fill, mix.

``workers.bokeh.layers`` on the array namespace: every layer is a premultiplied image
``(colour * w, w)``, 4 channels float32, on a grid smaller than the photo. The convolution is an
FFT one (``workers.gpu.filters.convolve``), where OpenCV sums small kernels directly: the same
result to float rounding.
"""

from __future__ import annotations

import numpy as np

from workers.bokeh.layers import FILL_CONFIDENCE
from workers.gpu.backend import Array, Backend
from workers.gpu.filters import convolve
from workers.gpu.resample import resize


def normalised_blur(backend: Backend, prem: Array, size: tuple[int, int], kernel: Array) -> Array:
    """Blur the premultiplied pair at size (width, height) and bring it back to prem's grid."""
    small = resize(backend, prem, size, "area")
    # zero padding: light from outside the frame is unknown, and the weight channel accounts for it
    blurred = convolve(backend, small, kernel)
    return resize(backend, blurred, (prem.shape[1], prem.shape[0]), "linear")


def blend_layers(backend: Backend, layers: list[Array], radius: Array, radii: list[float]) -> Array:
    """Mix the layers per pixel by linear interpolation of the pixel's blur radius (H×W)."""
    if len(layers) == 1:
        return layers[0]
    xp = backend.xp
    # where each radius falls among the layers' radii: 0 at the first, 1 at the second...
    pos = (xp.clip(radius, radii[0], radii[-1]) - radii[0]) / np.float32(radii[1] - radii[0])
    out = layers[0]
    for k in range(1, len(layers)):  # past layer k-1, layer k takes over in proportion
        out = mix(layers[k], out, xp.clip(pos - np.float32(k - 1), 0.0, 1.0))
    return out


def push_pull(backend: Backend, prem: Array) -> Array:
    """Divide out the weight, filling cells with too little background from coarser levels.

    ``prem`` is H×W×4; returns the H×W×3 colour.
    """
    xp = backend.xp
    levels = [prem]
    while min(levels[-1].shape[:2]) > 1:
        top = levels[-1]
        half = ((top.shape[1] + 1) // 2, (top.shape[0] + 1) // 2)
        levels.append(resize(backend, top, half, "area"))
    sums = levels[-1].reshape(-1, 4).sum(axis=0, dtype=xp.float64)
    # with no weight at all the colour sums are 0 too: the mean is black, as on the CPU
    mean = sums[:3] / xp.maximum(sums[3], 1e-300)
    colour = xp.broadcast_to(mean.astype(xp.float32), (*levels[-1].shape[:2], 3))
    for level in reversed(levels):
        colour = resize(backend, colour, (level.shape[1], level.shape[0]), "linear")
        weight = level[..., 3]
        # own colour n/w where w >= tau, fading into the coarser estimate as w drops below tau
        full = xp.maximum(weight, np.float32(FILL_CONFIDENCE))
        colour = (colour * (full - weight)[..., None] + level[..., :3]) / full[..., None]
    return colour


def mix(front: Array, back: Array, amount: Array) -> Array:
    """amount*front + (1-amount)*back, exactly front at 1 and exactly back at 0.

    ``amount`` is H×W, ``front`` and ``back`` H×W×C float32 of one namespace.
    """
    share = amount[..., None]
    return share * front + (1.0 - share) * back
