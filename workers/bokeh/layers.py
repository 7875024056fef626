"""The blurred background's layers on their reduced grids: blur, blend by radius, fill, mix.

Every layer is a premultiplied image ``(colour * w, w)``, 4 channels, on a grid smaller than the
photo; ``workers.bokeh.background`` renders one per blur radius and combines them here.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from workers.arrays import f32, resize
from workers.bokeh.aperture import convolve

FILL_CONFIDENCE = 0.02  # background share of the kernel below which the pyramid fill takes over
KERNEL_RADIUS = 8.0  # smallest radius at which a rasterised disc or polygon keeps its shape


def normalised_blur(
    prem: NDArray[np.float32], size: tuple[int, int], kernel: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Blur the premultiplied pair at the given size and bring it back to prem's grid."""
    small = resize(prem, size, cv2.INTER_AREA)
    # zero padding: light from outside the frame is unknown, and the weight channel accounts for it
    blurred = convolve(small, kernel)
    return resize(blurred, (prem.shape[1], prem.shape[0]), cv2.INTER_LINEAR)


def blend_layers(
    layers: list[NDArray[np.float32]], radius: NDArray[np.float32], radii: list[float]
) -> NDArray[np.float32]:
    """Mix the layers per pixel by linear interpolation of the pixel's blur radius."""
    if len(layers) == 1:
        return layers[0]
    pos = position(radius, radii)
    out = layers[0]
    for k in range(1, len(layers)):  # past layer k-1, layer k takes over in proportion
        out = mix(layers[k], out, np.clip(pos - np.float32(k - 1), 0.0, 1.0))
    return out


def position(radius: NDArray[np.float32], radii: list[float]) -> NDArray[np.float32]:
    """Where each radius falls among the layers' radii: 0 at the first, 1 at the second..."""
    if len(radii) == 1:
        return np.zeros_like(radius)
    return (np.clip(radius, radii[0], radii[-1]) - radii[0]) / np.float32(radii[1] - radii[0])


def push_pull(prem: NDArray[np.float32]) -> NDArray[np.float32]:
    """Divide out the weight, filling cells with too little background from coarser levels."""
    levels = [prem]
    while min(levels[-1].shape[:2]) > 1:
        top = levels[-1]
        half = ((top.shape[1] + 1) // 2, (top.shape[0] + 1) // 2)
        levels.append(resize(top, half, cv2.INTER_AREA))
    sums = levels[-1].reshape(-1, 4).sum(axis=0, dtype=np.float64)
    mean = sums[:3] / sums[3] if sums[3] > 0 else np.zeros(3)
    colour = np.empty((*levels[-1].shape[:2], 3), np.float32)
    colour[...] = mean
    for level in reversed(levels):
        colour = resize(colour, (level.shape[1], level.shape[0]), cv2.INTER_LINEAR)
        weight = level[..., 3]
        # own colour n/w where w >= tau, fading into the coarser estimate as w drops below tau:
        # (n + coarse * (max(w, tau) - w)) / max(w, tau), in place
        full = np.maximum(weight, np.float32(FILL_CONFIDENCE))
        colour *= (full - weight)[..., None]
        colour += level[..., :3]
        colour /= full[..., None]
    return colour


def mix(
    front: NDArray[np.float32], back: NDArray[np.float32], amount: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Return amount*front + (1-amount)*back, exactly front at 1 and exactly back at 0."""
    # blendLinear divides by (w1 + w2 + eps); weights of 2**16 make that sum exactly 2**16 at the
    # end points, so alpha = 1 passes the input through bit for bit.
    w1 = amount * np.float32(65536.0)
    return f32(cv2.blendLinear(front, back, w1, np.float32(65536.0) - w1))
