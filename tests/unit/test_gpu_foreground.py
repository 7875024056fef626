"""The GPU path's foreground estimation on the NumPy backend against the OpenCV stage (the
reference), on real photos under their own mattes from U²-Net-p."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.gpu.backend import numpy_backend
from workers.gpu.foreground import estimate_foreground
from workers.matting import Matting
from workers.matting import estimate_foreground as opencv_foreground

NP = numpy_backend()
PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str) -> NDArray[np.uint8]:
    """One of scikit-image's sample photos, H×W×3 uint8."""
    return np.asarray(getattr(data, name)(), np.uint8)


@pytest.fixture(scope="module")
def mattes() -> dict[str, tuple[NDArray[np.uint8], NDArray[np.float32]]]:
    """Each photo with the matting stage's own soft matte of it."""
    matting = Matting("u2netp", ModelStore(Settings().model_dir))
    return {name: (photo(name), matting.predict(photo(name))) for name in PHOTOS}


def _psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("size", [None, (1537, 1283)])  # a 2-px grid with partial cells
def test_foreground_equals_the_opencv_stage(
    mattes: dict[str, tuple[NDArray[np.uint8], NDArray[np.float32]]],
    name: str,
    size: tuple[int, int] | None,
) -> None:
    rgb, alpha = mattes[name]
    if size is not None:
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR), np.uint8)
        alpha = np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    soft = (alpha > 0.01) & (alpha < 0.99)
    assert soft.mean() > 0.02  # a matte with edges to work on, not a hard mask
    expected = opencv_foreground(rgb, alpha)
    got = NP.asnumpy(estimate_foreground(NP, NP.asarray(rgb), NP.asarray(alpha)))
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    assert np.count_nonzero(expected[soft] != rgb[soft]) > 0.5 * soft.sum()  # F was re-estimated
    difference = np.abs(got.astype(np.int16) - expected)
    assert np.mean(difference <= 1) >= 0.999
    assert _psnr(got, expected) >= 45.0
    np.testing.assert_array_equal(got[~soft], rgb[~soft])  # solid pixels keep their bytes


def test_a_hard_matte_leaves_the_photo_as_it_is() -> None:
    rgb = photo("coffee")
    alpha = np.zeros(rgb.shape[:2], np.float32)
    alpha[100:300, 200:400] = 1.0
    got = estimate_foreground(NP, rgb, alpha)
    np.testing.assert_array_equal(got, rgb)
    assert got is not rgb  # a new array: the caller may write to it


@pytest.mark.parametrize(
    ("alpha", "match"),
    [
        (np.zeros((10, 12), np.float64), "float32"),
        (np.zeros((12, 10), np.float32), "shape"),
        (np.full((10, 12), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((10, 12), np.nan, np.float32), r"\[0, 1\]"),
    ],
)
def test_bad_mattes_are_refused(alpha: NDArray[np.generic], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_foreground(NP, np.zeros((10, 12, 3), np.uint8), alpha)
