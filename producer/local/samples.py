"""Real sample photos for the demo and the tests, from scikit-image's and matplotlib's own files.

Nothing is downloaded: both packages ship these photos inside their wheels (the ``demo`` extra).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image


@dataclass(frozen=True)
class Sample:
    """A sample photo: a name, what its subject is, and how to load its pixels."""

    name: str
    subject: str
    load: Callable[[], NDArray[np.uint8]]

    def jpeg(self, *, long_side: int | None = None, quality: int = 92) -> bytes:
        """The photo as JPEG bytes, optionally shrunk so its long side is at most long_side."""
        image = Image.fromarray(self.load())
        if long_side and max(image.size) > long_side:
            image.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()


def _skimage(name: str) -> Callable[[], NDArray[np.uint8]]:
    def load() -> NDArray[np.uint8]:
        from skimage import data

        if name == "motorcycle":
            return np.asarray(data.stereo_motorcycle()[0])
        return np.asarray(getattr(data, name)())

    return load


def _matplotlib(filename: str) -> Callable[[], NDArray[np.uint8]]:
    def load() -> NDArray[np.uint8]:
        from matplotlib import cbook

        path = cbook.get_sample_data(filename, asfileobj=False)
        return np.asarray(Image.open(path).convert("RGB"))

    return load


SAMPLES = (
    Sample("astronaut", "portrait", _skimage("astronaut")),
    Sample("grace-hopper", "portrait", _matplotlib("grace_hopper.jpg")),
    Sample("chelsea", "pet", _skimage("chelsea")),
    Sample("coffee", "product", _skimage("coffee")),
    Sample("motorcycle", "product", _skimage("motorcycle")),
    Sample("clock", "object (grayscale)", _skimage("clock")),
    Sample("rocket", "object", _skimage("rocket")),
    Sample("camera", "portrait (grayscale)", _skimage("camera")),
    Sample("coins", "objects (grayscale)", _skimage("coins")),
    Sample("moon", "object (grayscale)", _skimage("moon")),
    Sample("hubble", "scene", _skimage("hubble_deep_field")),
    Sample("retina", "scene", _skimage("retina")),
)
"""Twelve real photos; the demo takes the first five (portraits, a pet, products)."""
