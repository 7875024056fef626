"""Bright spots on the backend's arrays: the highlight boost, and point lights found apart.

``workers.bokeh.highlights`` and ``.lights`` tell why. The boost is computed on the device; where
the CPU reads the dark share's grid enlarged at the clipped pixels only, here it is enlarged
whole (cheap on a GPU, the same values).

Point lights are found on the device, as ``workers.bokeh.lights.point_lights`` and
``gather_lights`` find them: the lit mask, halved (a 2 × 2 block is lit if any of its pixels
is), labelled 8-connected (``ndimage.label``; the numbering differs from OpenCV's, not the
blobs), each blob's bounding box read by labelled minimum and maximum and its cells and pixels
counted by ``bincount``. What crosses to the host: whether any pixel is lit, which
``workers.gpu.background`` reads with its other facts in one copy (a photo with none stops
there: nothing else about its lights crosses); the number of blobs; one table of four numbers
per blob, from which the CPU stage's own ``_largest_affordable`` picks the blobs to keep (the
2 % share is checked after the drop, as on the CPU). One number per blob goes back, which drops
the too-wide blobs and numbers the kept ones in one lookup. The lights' pixels, colours and
numbers stay on the device; their widths (one number per light) are on the host, where
``workers.gpu.discs`` plans their canvases. Beside these, CuPy's ``nonzero``, boolean indexing
and ``bincount`` each read a size or a maximum to allocate their output: a few scalars more.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from workers.arrays import scaled_size
from workers.bokeh.highlights import (
    _BRIGHT,
    _CELLS,
    _DARK,
    _MIN_SURROUND,
    _SURROUND,
    GAIN,
)
from workers.bokeh.lights import _LIGHT, _LIGHTS_APART_MAX, Lights, _largest_affordable
from workers.colour import DECODE
from workers.gpu.backend import Array, Backend
from workers.gpu.filters import box_mean
from workers.gpu.resample import lut, resize

_EIGHT_CONNECTED = np.ones((3, 3), bool)


def highlight_gain(backend: Backend, peak: Array, clipped: bool) -> Array:
    """The H×W float32 linear gain of each pixel, from its H×W max channel ``peak`` (uint8);
    ``clipped`` tells whether any byte of ``peak`` is over _CLIP_START (read by the caller with
    its other facts: the boost is skipped without)."""
    gain = lut(backend, GAIN, peak)
    if not clipped:
        return gain
    h, w = peak.shape
    boost = resize(backend, _dark_share(backend, peak), (w, h), "linear")
    # unclipped pixels have gain 1, which this keeps exactly
    return (gain - 1.0) * boost + 1.0


def _dark_share(backend: Backend, peak: Array) -> Array:
    """How dark each pixel's surroundings are, 1 to 0, on a grid of _CELLS per window half side.

    Cells are averaged in sRGB bytes, then decoded, as on the CPU.
    """
    xp = backend.xp
    h, w = peak.shape
    half = max(_MIN_SURROUND, _SURROUND * max(h, w))
    grid = scaled_size(w, h, min(1.0, _CELLS / half))
    level = lut(backend, DECODE, resize(backend, peak, grid, "area"))
    cells = 2 * round(half * grid[0] / w) + 1
    level = box_mean(backend, level, (cells, cells), "reflect")
    t = xp.clip((level - np.float32(_DARK)) / np.float32(_BRIGHT - _DARK), 0.0, 1.0)
    return 1.0 - t * t * (3.0 - 2.0 * t)  # smoothstep from 1 (dark) to 0 (bright)


def find_lights(
    backend: Backend, lin: Array, peak: Array, gain: Array, clear: Array, widest: float
) -> Lights | None:
    """The point lights to draw apart, or None when there are none or too many.

    Arguments as ``workers.bokeh.lights.find_lights`` takes them, on the backend: ``lin`` the
    H×W×3 linear photo, ``peak`` its max channel, ``gain`` its boost, ``clear`` where alpha = 0,
    ``widest`` the widest disc's radius. The lights' ``ys``, ``xs``, ``colour`` and ``light``
    are arrays of the backend, their ``sizes`` a host array. Without a lit pixel this labels
    the mask to find none: a caller that knows it skips the call.
    """
    xp = backend.xp
    lit = (peak >= _LIGHT) & clear
    blocks = _block_counts(backend, lit)
    labels, count = backend.ndimage.label(blocks > 0, structure=_EIGHT_CONNECTED)
    if int(count) == 0:
        return None
    sides, cells, pixels = _blob_stats(backend, labels, int(count), blocks)
    keep = sides <= _largest_affordable(sides, 4 * cells, widest, lit.size)
    if not 0 < int(pixels[keep].sum()) <= _LIGHTS_APART_MAX * lit.size:
        return None
    # each label's light number, -1 for the unlit rest (label 0) and the dropped blobs
    number = np.concatenate([[-1], np.where(keep, np.cumsum(keep) - 1, -1)])
    ys, xs = xp.nonzero(lit)
    light = backend.asarray(number)[labels[ys // 2, xs // 2]]
    kept = light >= 0
    ys, xs, light = ys[kept], xs[kept], light[kept]
    colour = lin[ys, xs] * gain[ys, xs][:, None]
    return Lights((lit.shape[0], lit.shape[1]), ys, xs, colour, light, sides[keep])


def _block_counts(backend: Backend, lit: Array) -> Array:
    """How many pixels of each 2 × 2 block of the H×W mask are lit: ⌈H/2⌉×⌈W/2⌉ int."""
    h, w = lit.shape
    even = backend.xp.pad(lit, ((0, h % 2), (0, w % 2)))
    return even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2).sum(axis=(1, 3))


def _blob_stats(
    backend: Backend, labels: Array, count: int, blocks: Array
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Each blob's width in photo pixels (twice its halved bounding box's longer side), its
    cells on the halved grid and its lit pixels, labels 1 to ``count`` in order, on the host."""
    xp = backend.xp
    ys, xs = xp.nonzero(labels)
    blob = labels[ys, xs]
    top, bottom = label_extremes(backend, ys, blob, count)
    left, right = label_extremes(backend, xs, blob, count)
    # cells and pixels counted by one bincount, interleaved: CuPy's reads its output's size
    weights = xp.stack([xp.ones_like(ys), blocks[ys, xs]], axis=1).ravel()
    counted = xp.bincount((blob[:, None] * 2 + xp.arange(2)).ravel(), weights, (count + 1) * 2)
    cells, pixels = counted.reshape(count + 1, 2)[1:].T
    stats = backend.asnumpy(xp.stack([bottom - top, right - left, cells, pixels]))
    stats = stats.astype(np.intp)
    return 2 * (np.maximum(stats[0], stats[1]) + 1), stats[2], stats[3]


def label_extremes(
    backend: Backend, values: Array, labels: Array, count: int
) -> tuple[Array, Array]:
    """The least and greatest of ``values`` under each label 1 to ``count`` (1-D arrays of one
    length; every label present), as arrays of the backend.

    ``ndimage.minimum`` and ``maximum`` with an index: labelled reductions that
    ``scipy.ndimage`` and ``cupyx.scipy.ndimage`` both have, with one signature.
    """
    index = backend.xp.arange(1, count + 1)
    low = backend.ndimage.minimum(values, labels, index)
    high = backend.ndimage.maximum(values, labels, index)
    return backend.xp.asarray(low), backend.xp.asarray(high)


def lights_on_grid(backend: Backend, lights: Lights, grid: tuple[int, int]) -> Array:
    """The lights' image area-averaged to the grid (width, height), H'×W'×3 on the backend.

    The image is drawn full size and averaged as the layers' colour is (what
    ``workers.bokeh.lights.area_grid`` computes from the light pixels alone on the CPU).
    """
    image = backend.xp.zeros((*lights.shape, 3), np.float32)
    image[lights.ys, lights.xs] = lights.colour
    return resize(backend, image, grid, "area")
