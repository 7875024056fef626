"""Box means with OpenCV's borders, and convolution with a zero border, on the backend's arrays.

``box_mean`` is ``cv2.blur`` / ``cv2.boxFilter`` (normalised), ``convolve`` is ``cv2.filter2D``
with ``BORDER_CONSTANT`` (a correlation with the kernel's centre as anchor), computed with FFTs
whatever the kernel's size, which is what a GPU does best.
"""

from __future__ import annotations

from workers.gpu.backend import Array, Backend

BORDERS = {"reflect101": "mirror", "reflect": "reflect"}
"""OpenCV's BORDER_REFLECT_101 (``cv2.blur``'s default) and BORDER_REFLECT, in ndimage's names."""


def box_mean(backend: Backend, image: Array, size: tuple[int, int], border: str) -> Array:
    """The mean over a (width, height) box around each pixel of an H×W or H×W×C array.

    ``border`` is ``"reflect101"`` or ``"reflect"``; an even box reaches one pixel further up and
    left than down and right, as OpenCV's does.
    """
    width, height = size
    sizes = (height, width, *([1] * (image.ndim - 2)))
    return backend.ndimage.uniform_filter(image, size=sizes, mode=BORDERS[border])


def convolve(backend: Backend, image: Array, kernel: Array) -> Array:
    """``cv2.filter2D`` of an H×W or H×W×C float32 array with a kh×kw kernel, zeros outside."""
    xp, fft = backend.xp, backend.fft
    h, w = image.shape[:2]
    kh, kw = kernel.shape
    shape = (fft.next_fast_len(h + kh - 1, real=True), fft.next_fast_len(w + kw - 1, real=True))
    flipped = kernel[::-1, ::-1].reshape(kernel.shape + (1,) * (image.ndim - 2))
    spectrum = fft.rfft2(image, s=shape, axes=(0, 1)) * fft.rfft2(flipped, s=shape, axes=(0, 1))
    full = fft.irfft2(spectrum, s=shape, axes=(0, 1))
    # the full convolution starts kh - 1 rows before the image; the anchor is the kernel's centre
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    return xp.ascontiguousarray(full[top : top + h, left : left + w], dtype=xp.float32)
