"""Segmentation doubt: wide regions of mid alpha decided for the subject or the background.

At an edge, mid alpha is a band a few pixels wide. A region of mid alpha many bands across is the
network's doubt about what the region is (a dark sweater at 0.4), not transparency, except for
veils and glass, whose colour is a mix of what is in front and what is behind. Such a region is
decided from colour: palettes of the confident subject (α ≥ 0.95) and background (α ≤ 0.05)
around it are clustered, and each of its pixels is explained by the subject, by the background,
or by neither (a mix, or a colour neither palette holds). When most of the region is explained by
one side and little of it by the other, the region goes to that side, except pixels that the other
side explains; otherwise it keeps its alpha. Strands (hair, fur), whose alpha varies from pixel to
pixel, are left alone; a region goes to the subject only where it connects to the confident
subject; and the decisions together never take away most of the subject nor add more than it had.
The closed-form solve that follows re-draws the edges of what was decided.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

# Mid alpha: neither subject nor background.
_MID = (0.15, 0.85)
# Confident alpha: what the palettes learn from, and the subject a decided region must touch.
_CONFIDENT = (0.05, 0.95)
# A region is wide when some of its pixels lie farther than this many edge bands from its border.
_WIDE = 2.0
# Alpha varying more than this (standard deviation over a band-sized window) is strands, kept.
_STRANDS = 0.05
# Confident pixels this far (fraction of the long side) around a wide region teach the palettes.
_REACH = 0.15
# With fewer confident pixels than this on a side nothing is decided: no palette to trust.
_MIN_SAMPLES = 200
# Palette: k-means clusters of at most _SAMPLES colours (CIELAB), _ROUNDS Lloyd rounds.
_CLUSTERS = 16
_SAMPLES = 4000
_ROUNDS = 6
# A side explains a colour when its palette is within this CIELAB distance (ΔE) of it ...
_EXPLAINED = 10.0
# ... and the other side's palette is farther by at least this much.
_MARGIN = 3.0
# A mix explains a colour at t·F + (1 − t)·B with t within this of the pixel's alpha.
_MIX_SPREAD = 0.15
# A region goes to a side when more than this share of its pixels is explained by that side
# and the other side explains fewer than 1/_CONTESTED as many.
_MAJORITY = 0.5
_CONTESTED = 4.0

# From OpenCV's 8-bit CIELAB to L 0..100 and signed a, b.
_LAB_OFFSET = np.array([0.0, 128.0, 128.0], np.float32)
_LAB_SCALE = np.array([100.0 / 255.0, 1.0, 1.0], np.float32)

# What explains a pixel's colour.
_BACKGROUND, _NEITHER, _SUBJECT = 0, 1, 2


def resolve_doubt(
    alpha: NDArray[np.float32], rgb: NDArray[np.uint8], band: int
) -> NDArray[np.float32]:
    """H×W alpha with its wide mid-alpha regions set to 0 or 1 where colour decides; H×W×3 rgb.

    band is the width in pixels of an edge's uncertain band at this resolution.
    """
    regions, count = wide_regions(alpha, band)
    if not count:
        return alpha
    wide = regions > 0
    doubt = wide & ~_strands(alpha, band)
    low, high = _CONFIDENT
    near = _around(wide, round(_REACH * max(alpha.shape)))
    subject, background = near & (alpha >= high), near & (alpha <= low)
    if min(np.count_nonzero(subject), np.count_nonzero(background)) < _MIN_SAMPLES:
        return alpha
    explained = np.full(alpha.shape, _NEITHER, np.uint8)
    palettes = _palette(_samples(rgb, subject)), _palette(_samples(rgb, background))
    explained[doubt] = _explain(_lab(rgb[doubt]), alpha[doubt], *palettes)
    to_subject, to_background = _by_region(regions, count, doubt, explained, alpha)
    out = alpha.copy()
    out[_attached(to_subject, alpha)] = 1.0
    out[to_background] = 0.0
    return out


def wide_regions(alpha: NDArray[np.float32], band: int) -> tuple[NDArray[np.int32], int]:
    """Connected regions of mid alpha with a pixel more than _WIDE bands from their border.

    Returns an H×W map numbering them 1..count (0 elsewhere) and count.
    """
    low, high = _MID
    mid = ((alpha > low) & (alpha < high)).view(np.uint8)
    depth = cv2.distanceTransform(mid, cv2.DIST_L2, 3)
    deep = depth > _WIDE * band
    if not deep.any():
        return np.zeros(alpha.shape, np.int32), 0
    total, labels = cv2.connectedComponents(mid, connectivity=8)
    kept = np.unique(labels[deep])
    numbers = np.zeros(total, np.int32)
    numbers[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return numbers[labels], len(kept)


def _strands(alpha: NDArray[np.float32], band: int) -> NDArray[np.bool_]:
    """Where mid alpha varies within a band-sized window: strands of hair or fur."""
    # Over mid-alpha pixels only, so that the step from a region to the confident subject
    # around it does not count as variation.
    low, high = _MID
    mid = ((alpha > low) & (alpha < high)).astype(np.float32)
    size = (2 * band + 1, 2 * band + 1)
    share = np.maximum(cv2.blur(mid, size), 1e-6)
    masked = alpha * mid
    mean = cv2.blur(masked, size) / share
    spread = cv2.blur(masked * alpha, size) / share - mean * mean
    return np.asarray(spread > _STRANDS * _STRANDS, bool)


def _around(region: NDArray[np.bool_], reach: int) -> NDArray[np.bool_]:
    """The region grown by reach pixels."""
    # A distance transform, not a dilation: its cost does not grow with the reach.
    outside = (~region).view(np.uint8)
    return np.asarray(cv2.distanceTransform(outside, cv2.DIST_L2, 3) <= reach, bool)


def _samples(rgb: NDArray[np.uint8], where: NDArray[np.bool_]) -> NDArray[np.float32]:
    """At most about _SAMPLES colours of rgb where the mask is set, evenly spread, in CIELAB."""
    index = np.flatnonzero(where)
    index = index[:: max(1, len(index) // _SAMPLES)]
    return _lab(rgb.reshape(-1, 3)[index])


def _lab(colours: NDArray[np.uint8]) -> NDArray[np.float32]:
    """N×3 RGB → CIELAB (L 0..100, a and b about −128..127), where distance follows perception."""
    # OpenCV's 8-bit conversion is a table lookup, many times faster than its float one; its
    # L is scaled to 0..255 and a, b offset by 128.
    lab = np.asarray(cv2.cvtColor(colours.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab), np.float32)
    lab = lab.reshape(-1, 3) - _LAB_OFFSET
    lab *= _LAB_SCALE
    return lab


def _palette(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """Up to _CLUSTERS k-means centres of N×3 colours, the same for the same colours."""
    planes = np.ascontiguousarray(samples.T)
    # Farthest-point seeds rather than random ones: deterministic, and a colour that is rare
    # but far from the rest (an orange suit among skin and black) gets a centre of its own.
    first = int(np.argmin(_length(planes - planes.mean(axis=1, keepdims=True))))
    seeds = [first]
    gap = _length(planes - planes[:, first : first + 1])
    for _ in range(min(_CLUSTERS, len(samples)) - 1):
        seeds.append(int(np.argmax(gap)))
        gap = np.minimum(gap, _length(planes - planes[:, seeds[-1] : seeds[-1] + 1]))
    centres = samples[seeds].copy()
    for _ in range(_ROUNDS):
        nearest, _ = _nearest(planes, centres)
        for k in range(len(centres)):
            members = samples[nearest == k]
            if len(members):
                centres[k] = members.mean(axis=0)
    return np.asarray(centres, np.float32)


def _explain(
    colours: NDArray[np.float32],
    alpha: NDArray[np.float32],
    subject: NDArray[np.float32],
    background: NDArray[np.float32],
) -> NDArray[np.uint8]:
    """Per colour: _SUBJECT or _BACKGROUND when that palette clearly explains it, else _NEITHER.

    Clearly: closer than _EXPLAINED and by _MARGIN closer than the other palette, unless a mix
    of the two nearest colours at the pixel's own alpha (what a veil would show) is by _MARGIN
    closer still.
    """
    # Channel planes (3×N) rather than N×3 rows: numpy sums short rows slowly.
    planes = np.ascontiguousarray(colours.T)
    nearest, to_subject = _nearest(planes, subject)
    front = np.ascontiguousarray(subject[nearest].T)
    nearest, to_background = _nearest(planes, background)
    back = np.ascontiguousarray(background[nearest].T)
    to_mix = _mix_distance(planes, alpha, front, back)
    out = np.full(len(colours), _NEITHER, np.uint8)
    out[(to_subject < _EXPLAINED) & (to_subject + _MARGIN < to_background)] = _SUBJECT
    out[(to_background < _EXPLAINED) & (to_background + _MARGIN < to_subject)] = _BACKGROUND
    out[to_mix + _MARGIN < np.minimum(to_subject, to_background)] = _NEITHER
    return out


def _mix_distance(
    planes: NDArray[np.float32],
    alpha: NDArray[np.float32],
    front: NDArray[np.float32],
    back: NDArray[np.float32],
) -> NDArray[np.float32]:
    """Distance of each colour to the nearest t·front + (1 − t)·back with |t − α| ≤ _MIX_SPREAD;
    all 3×N channel planes."""
    span = front - back
    offset = planes - back
    t = (offset * span).sum(axis=0) / np.maximum((span * span).sum(axis=0), 1e-6)
    t = np.clip(t, alpha - _MIX_SPREAD, alpha + _MIX_SPREAD)
    return _length(offset - t * span)


def _nearest(
    planes: NDArray[np.float32], centres: NDArray[np.float32]
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """For 3×N channel planes: the index of the nearest of K×3 centres and the distance to it."""
    # One pass per centre over whole planes: numpy's argmin along short N×K rows is slow.
    best = np.full(planes.shape[1], np.inf, np.float32)
    index = np.zeros(planes.shape[1], np.intp)
    for k, centre in enumerate(centres):
        distance = _length(planes - centre[:, None])
        closer = distance < best
        np.copyto(best, distance, where=closer)
        np.copyto(index, k, where=closer)
    return index, best


def _length(planes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Euclidean length of each column of 3×N channel planes."""
    return np.asarray(np.sqrt((planes * planes).sum(axis=0)), np.float32)


def _by_region(
    regions: NDArray[np.int32],
    count: int,
    doubt: NDArray[np.bool_],
    explained: NDArray[np.uint8],
    alpha: NDArray[np.float32],
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The doubt pixels to give to the subject and to the background, region by region."""
    # A region is one object the network was unsure of: a clear, uncontested majority decides,
    # so that a few pixels whose colour happens to match the other side do not split it.
    in_doubt = regions[doubt]
    size = np.maximum(np.bincount(in_doubt, minlength=count + 1), 1)
    background, subject = (
        np.bincount(in_doubt[explained[doubt] == side], minlength=count + 1) / size
        for side in (_BACKGROUND, _SUBJECT)
    )
    to_background = (background > _MAJORITY) & (subject < background / _CONTESTED)
    to_subject = (subject > _MAJORITY) & (background < subject / _CONTESTED)
    to_background[0] = to_subject[0] = False  # 0 is outside every region
    # Deciding refines the subject the network found: never take away most of it, nor add
    # more than there was (a palette can be fooled where subject and background share colours).
    mass = np.bincount(regions.ravel(), weights=alpha.ravel(), minlength=count + 1)
    area = np.bincount(regions.ravel(), minlength=count + 1)
    total = float(alpha.sum())
    if mass[to_background].sum() > total / 2:
        to_background[:] = False
    if (area - mass)[to_subject].sum() > total:
        to_subject[:] = False
    return (
        doubt & to_subject[regions] & (explained != _BACKGROUND),
        doubt & to_background[regions] & (explained != _SUBJECT),
    )


def _attached(candidates: NDArray[np.bool_], alpha: NDArray[np.float32]) -> NDArray[np.bool_]:
    """The candidates that reach the confident subject without crossing background (α ≤ 0.15)."""
    joined = (candidates | (alpha > _MID[0])).view(np.uint8)
    count, labels = cv2.connectedComponents(joined, connectivity=8)
    anchored = np.zeros(count, bool)
    anchored[np.unique(labels[alpha >= _CONFIDENT[1]])] = True
    anchored[0] = False
    return np.asarray(candidates & anchored[labels], bool)
