"""The GPU path's closed-form solve and doubt test on the NumPy backend against the OpenCV stage:
the coarse-to-fine solve on real photos' mattes, its conjugate gradients, the trivial cases, and
the refinement that visits the host only when there may be doubt to decide."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.sparse
from numpy.typing import NDArray
from skimage import data

import workers.gpu.matting as device_matting
from infra.models import ModelStore
from infra.settings import Settings
from workers.gpu.backend import numpy_backend
from workers.gpu.closed_form import closed_form_refine, conjugate_gradients, unknown_pixels
from workers.gpu.matting import may_doubt, refine_with_decided
from workers.matting import Matting
from workers.matting import closed_form as opencv
from workers.matting.doubt import wide_regions
from workers.matting.refine import refine_with_decided as opencv_refine_with_decided
from workers.matting.upsample import refine_upsample

NP = numpy_backend()
PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str, side: int = 400) -> NDArray[np.uint8]:
    """One of scikit-image's sample photos, shrunk to a long side of at most ``side``."""
    rgb = np.asarray(getattr(data, name)(), np.uint8)
    height, width = rgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    size = (round(width * scale), round(height * scale))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)


@pytest.fixture(scope="module")
def u2netp() -> Matting:
    return Matting("u2netp", ModelStore(Settings().model_dir))


def matte(matting: Matting, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """U²-Net-p's alpha of the photo at its size, as the refinement hands it to the solve."""
    return refine_upsample(matting.predict_lowres(rgb), rgb)


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("levels", [3, 1])
def test_the_solve_equals_opencvs_on_real_mattes(u2netp: Matting, name: str, levels: int) -> None:
    rgb = photo(name)
    alpha = matte(u2netp, rgb)
    expected = opencv.closed_form_refine(rgb, alpha, levels)
    assert opencv.unknown_pixels(alpha) > 1000  # a band to solve
    assert np.abs(expected - alpha).max() > 0.1  # which the solve changes
    got = closed_form_refine(NP, NP.asarray(rgb), NP.asarray(alpha), levels)
    assert got.dtype == np.float32 and got.shape == alpha.shape
    assert np.abs(got - expected).max() <= 1e-4
    assert unknown_pixels(NP, alpha) == opencv.unknown_pixels(alpha)


def test_without_unknown_pixels_the_trimap_is_the_answer() -> None:
    rgb = photo("coffee", 200)
    for flat in (np.zeros(rgb.shape[:2], np.float32), np.ones(rgb.shape[:2], np.float32)):
        assert unknown_pixels(NP, flat) == 0
        got = closed_form_refine(NP, rgb, flat)
        np.testing.assert_array_equal(got, opencv.closed_form_refine(rgb, flat))
        np.testing.assert_array_equal(got, flat)


def test_conjugate_gradients_stop_where_opencvs_do() -> None:
    """A diagonally dominant system that converges within the limit: the same iterates, the same
    stop, though the device reads its test back only every few iterations."""
    rng = np.random.default_rng(7)
    count = 2000
    off = rng.random(count - 1) * 0.5
    system = scipy.sparse.diags([off, 1.0 + rng.random(count), off], [-1, 0, 1], format="csr")
    rhs, start = rng.random(count), np.zeros(count)
    expected = opencv.conjugate_gradients(system, rhs, start, 100)
    np.testing.assert_array_equal(opencv.conjugate_gradients(system, rhs, start, 1000), expected)
    assert not np.array_equal(opencv.conjugate_gradients(system, rhs, start, 3), expected)
    np.testing.assert_array_equal(conjugate_gradients(NP, system, rhs, start, 100), expected)


def test_bad_shapes_are_refused() -> None:
    rgb = photo("coffee", 100)
    alpha = np.zeros(rgb.shape[:2], np.float32)
    with pytest.raises(ValueError, match="does not match"):
        closed_form_refine(NP, rgb, alpha[:-1])
    with pytest.raises(ValueError, match="uint8"):
        closed_form_refine(NP, rgb.astype(np.float32), alpha)
    with pytest.raises(ValueError, match="uint8"):
        closed_form_refine(NP, rgb[..., 0], alpha)


def test_the_doubt_test_finds_every_wide_region() -> None:
    """Blurred noise mattes of many region sizes: where OpenCV's depth finds a wide region the
    device's test says there may be one; where the test says none, there is none."""
    rng = np.random.default_rng(11)
    found = {True: 0, False: 0}
    for _ in range(60):
        noise = rng.random((150, 200)).astype(np.float32)
        alpha = np.asarray(cv2.GaussianBlur(noise, (0, 0), rng.uniform(2.0, 10.0)), np.float32)
        spread = rng.uniform(0.2, 2.0) / alpha.std()
        alpha = np.clip((alpha - alpha.mean()) * spread + 0.5, 0.0, 1.0)
        band = int(rng.integers(1, 6))
        wide = wide_regions(alpha, band)[1] > 0
        assert may_doubt(NP, alpha, band) or not wide
        found[wide] += 1
    assert min(found.values()) >= 10  # both kinds of case were met
    everywhere = np.full((50, 60), 0.5, np.float32)  # no pixel outside mid alpha
    assert wide_regions(everywhere, 1)[1] == 1 and may_doubt(NP, everywhere, 1)


@pytest.mark.services  # the model weights
def test_without_doubt_the_refinement_stays_on_the_backend(
    u2netp: Matting, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = photo("coffee", 800)
    lowres = u2netp.predict_lowres(rgb)
    upsampled = refine_upsample(lowres, rgb)
    assert wide_regions(upsampled, opencv.band_width(upsampled))[1] == 0
    expected, expected_share = opencv_refine_with_decided(lowres, rgb)

    def host_decision(*_: object) -> None:
        raise AssertionError("the doubt decision was run on the host")

    monkeypatch.setattr(device_matting, "refine_decide", host_decision)
    alpha, share = refine_with_decided(NP, lowres, rgb)
    assert share == expected_share == 0.0
    assert np.abs(alpha - expected).max() <= 1e-4


@pytest.mark.services  # the model weights
def test_with_doubt_the_host_decides_as_on_the_cpu(u2netp: Matting) -> None:
    rgb = photo("astronaut", 800)
    lowres = u2netp.predict_lowres(rgb)
    expected, expected_share = opencv_refine_with_decided(lowres, rgb)
    assert expected_share > 0.001  # colour decided part of the subject
    alpha, share = refine_with_decided(NP, lowres, rgb)
    assert share == pytest.approx(expected_share, abs=1e-6)
    assert np.abs(alpha - expected).max() <= 1e-4
