"""The GPU path's matting on the NumPy backend against the OpenCV stage (the reference): the
photo resized to the networks' input, guided upsampling, fusion, the refinement with its host
solve, and whole mattes with their confidence from the real networks on real photos."""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.arrays import resize as opencv_resize
from workers.gpu.backend import numpy_backend
from workers.gpu.matting import DeviceMatting, fuse, refine_with_decided, u2netp_alpha
from workers.gpu.resample import resize
from workers.gpu.upsample import refine_upsample
from workers.matting import Matting
from workers.matting import models as opencv_models
from workers.matting.refine import refine_with_decided as opencv_refine_with_decided
from workers.matting.sessions import ModelSession
from workers.matting.upsample import refine_upsample as opencv_upsample

NP = numpy_backend()
PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str) -> NDArray[np.uint8]:
    """One of scikit-image's sample photos, H×W×3 uint8."""
    return np.asarray(getattr(data, name)(), np.uint8)


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore(Settings().model_dir)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize(
    "size", [(320, 320), (1024, 1024), (1731, 1299), (225, 150), (256, 200), (451, 3), 2, 4, 5]
)
def test_photos_are_resized_to_opencvs_bytes(name: str, size: tuple[int, int] | int) -> None:
    """Enlarging (fixed-point bilinear), mixed, area shrinking, and shrinking by whole factors."""
    rgb = photo(name)
    if isinstance(size, int):  # a whole factor where it divides the photo, else near it
        size = (rgb.shape[1] // size, rgb.shape[0] // size)
    expected = opencv_resize(rgb, size)
    got = resize(NP, rgb, size)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("case", ["enlarge", "from-larger", "to-12mp-ish"])
def test_guided_upsampling_equals_opencvs(store: ModelStore, name: str, case: str) -> None:
    rgb = photo(name)
    lowres = Matting("u2netp", store).predict_lowres(rgb)
    if case == "from-larger":  # ISNet's 1024² map onto a smaller photo
        lowres = np.asarray(cv2.resize(lowres, (1024, 1024)), np.float32)
    if case == "to-12mp-ish":
        rgb = np.asarray(cv2.resize(rgb, (1731, 1299), interpolation=cv2.INTER_LINEAR), np.uint8)
    expected = opencv_upsample(lowres, rgb)
    band = (expected > 0.01) & (expected < 0.99)
    assert band.any()  # the case has edges to follow
    got = NP.asnumpy(refine_upsample(NP, NP.asarray(lowres), NP.asarray(rgb)))
    assert got.dtype == np.float32 and got.shape == rgb.shape[:2]
    assert np.abs(got - expected).max() < 1e-4


def test_fusion_equals_opencvs() -> None:
    rng = np.random.default_rng(17)
    isnet = rng.random((1024, 1024), dtype=np.float32) * 0.6
    u2netp = np.asarray(cv2.GaussianBlur(rng.random((320, 320), dtype=np.float32), (0, 0), 6))
    u2netp = (u2netp - u2netp.min()) / (u2netp.max() - u2netp.min())
    expected = opencv_models.fuse(isnet, u2netp)
    assert (expected > isnet).mean() > 0.1  # the core lifts part of the map
    np.testing.assert_allclose(NP.asnumpy(fuse(NP, isnet, u2netp)), expected, atol=1e-5)


class FlatSession:
    """A network that sees nothing: the same saliency everywhere."""

    input_size = 32

    def run_on_device(self, backend: Any, tensor: Any) -> NDArray[np.float32]:
        return np.full((1, 1, 32, 32), 0.3, np.float32)


def test_a_flat_saliency_map_is_no_subject() -> None:
    session = cast(ModelSession, FlatSession())
    alpha = u2netp_alpha(NP, session, photo("coffee"))
    assert alpha.shape == (32, 32) and alpha.dtype == np.float32
    assert not alpha.any()


def test_a_band_too_wide_is_solved_smaller_as_on_the_cpu() -> None:
    """Strands over the whole frame: the solve is capped, with the photo resized on the device."""
    rng = np.random.default_rng(5)
    lowres = np.zeros((320, 320), np.float32)
    for _ in range(150):
        start, end = rng.integers(0, 320, 2), rng.integers(0, 320, 2)
        cv2.line(lowres, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), 1.0, 1, 16)
    rgb = np.asarray(cv2.resize(photo("chelsea"), (1200, 800)), np.uint8)
    expected, expected_share = opencv_refine_with_decided(lowres, rgb)
    alpha, share = refine_with_decided(NP, lowres, rgb)
    assert alpha.shape == (800, 1200) and alpha.dtype == np.float32
    assert float(np.abs(alpha - expected).mean()) <= 0.005
    assert share == pytest.approx(expected_share, abs=1e-3)


@pytest.mark.services  # the model weights
@pytest.mark.parametrize("name", PHOTOS)
def test_u2netp_mattes_and_confidence_equal_opencvs(store: ModelStore, name: str) -> None:
    rgb = photo(name)
    matting = Matting("u2netp", store)
    expected, expected_confidence = matting.predict_with_confidence(rgb)
    device = DeviceMatting(matting, NP)
    alpha, confidence = device.predict_with_confidence(NP.asarray(rgb))
    assert isinstance(alpha, np.ndarray)  # the backend's own array
    assert alpha.shape == rgb.shape[:2] and alpha.dtype == np.float32
    assert float(np.abs(alpha - expected).mean()) <= 0.005
    assert abs(confidence.value - expected_confidence.value) <= 0.02
    assert confidence.review == expected_confidence.review
    assert confidence.signals.keys() == expected_confidence.signals.keys()
    np.testing.assert_array_equal(NP.asnumpy(device.predict(rgb)), alpha)
    assert device.version == matting.version


@pytest.mark.services  # the model weights
def test_fusion_matte_and_disagreement_equal_opencvs(store: ModelStore) -> None:
    rgb = photo("chelsea")
    matting = Matting("fusion", store)
    expected, expected_confidence = matting.predict_with_confidence(rgb)
    alpha, confidence = DeviceMatting(matting, NP).predict_with_confidence(rgb)
    assert float(np.abs(alpha - expected).mean()) <= 0.005
    assert abs(confidence.value - expected_confidence.value) <= 0.02
    disagreement = confidence.signals["disagreement"]
    assert disagreement == pytest.approx(expected_confidence.signals["disagreement"], abs=0.01)


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((0, 8, 3))]
)
def test_bad_photos_are_refused(store: ModelStore, bad: NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="uint8"):
        DeviceMatting(Matting("u2netp", store), NP).predict(bad)
