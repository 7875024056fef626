"""On a machine with CUDA, CuPy and onnxruntime-gpu: the matting stage and foreground estimation
on CuPy arrays give what their NumPy runs give, the networks run on CUDA, and the matte and the
foreground stay on the device; so does the closed-form solve."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.gpu.backend import cupy_backend, numpy_backend
from workers.gpu.closed_form import closed_form_refine
from workers.gpu.foreground import estimate_foreground
from workers.gpu.matting import DeviceMatting, may_doubt
from workers.gpu.resample import resize
from workers.gpu.upsample import refine_upsample
from workers.matting import Matting
from workers.matting.closed_form import band_width
from workers.matting.sessions import CUDA

pytestmark = pytest.mark.gpu

NP = numpy_backend()


def _photo() -> NDArray[np.uint8]:
    """The astronaut at 4000 x 3000 (12 MP)."""
    rgb = np.asarray(data.astronaut(), np.uint8)  # type: ignore[no-untyped-call]
    return np.asarray(cv2.resize(rgb, (4000, 3000), interpolation=cv2.INTER_CUBIC), np.uint8)


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore(Settings().model_dir)


@pytest.mark.parametrize("model", ["u2netp", "fusion"])
def test_cupy_mattes_equal_numpy_mattes_on_12_mp(store: ModelStore, model: str) -> None:
    gpu = cupy_backend()
    matting = Matting(model, store)
    rgb = _photo()
    alpha, confidence = DeviceMatting(matting, gpu).predict_with_confidence(gpu.asarray(rgb))
    assert isinstance(alpha, gpu.xp.ndarray)  # born on the device, left there for the renderer
    assert alpha.shape == rgb.shape[:2] and alpha.dtype == np.float32
    for name in matting.networks:
        assert matting.session(name, gpu).active_providers[0] == CUDA
    expected, expected_confidence = DeviceMatting(matting, NP).predict_with_confidence(rgb)
    # onnxruntime's CUDA kernels differ from its CPU ones by a few thousandths (test_cuda.py)
    assert float(np.abs(gpu.asnumpy(alpha) - expected).mean()) <= 0.005
    assert abs(confidence.value - expected_confidence.value) <= 0.02


def test_cupy_foreground_equals_numpy_foreground_on_12_mp(store: ModelStore) -> None:
    gpu = cupy_backend()
    rgb = _photo()
    alpha = NP.asnumpy(DeviceMatting(Matting("u2netp", store), NP).predict(rgb))
    front = estimate_foreground(gpu, gpu.asarray(rgb), gpu.asarray(alpha))
    assert isinstance(front, gpu.xp.ndarray) and front.dtype == np.uint8
    expected = estimate_foreground(NP, rgb, alpha)
    difference = np.abs(gpu.asnumpy(front).astype(np.int16) - expected)
    assert np.mean(difference <= 1) >= 0.999
    mse = float(np.mean(difference.astype(np.float64) ** 2))
    assert mse == 0.0 or 10.0 * np.log10(255.0**2 / mse) >= 45.0


def test_cupy_resizing_and_upsampling_equal_numpy() -> None:
    gpu = cupy_backend()
    rgb = _photo()
    for size in [(320, 320), (1024, 1024), (800, 600), (1000, 750), (6000, 4500)]:
        got = gpu.asnumpy(resize(gpu, gpu.asarray(rgb), size))
        assert np.abs(got.astype(np.int16) - resize(NP, rgb, size)).max() <= 1
    yy, xx = np.mgrid[0:320, 0:320].astype(np.float32)
    lowres = np.clip(1.5 - np.hypot(xx - 160, yy - 170) / 80, 0.0, 1.0).astype(np.float32)
    got = gpu.asnumpy(refine_upsample(gpu, gpu.asarray(lowres), gpu.asarray(rgb)))
    assert np.abs(got - refine_upsample(NP, lowres, rgb)).max() < 1e-3


def test_cupy_closed_form_equals_numpy_at_the_working_size(store: ModelStore) -> None:
    gpu = cupy_backend()
    rgb = resize(NP, _photo(), (800, 600))
    alpha = refine_upsample(NP, Matting("u2netp", store).predict_lowres(rgb), rgb)
    expected = closed_form_refine(NP, rgb, alpha)
    got = closed_form_refine(gpu, gpu.asarray(rgb), gpu.asarray(alpha))
    assert isinstance(got, gpu.xp.ndarray) and got.dtype == np.float32
    # the device sums in another order: the conjugate gradients' iterates part by rounding, and
    # may stop an iteration apart
    difference = np.abs(gpu.asnumpy(got) - expected)
    assert difference.max() <= 1e-3 and difference.mean() <= 1e-5
    band = band_width(alpha)
    assert may_doubt(gpu, gpu.asarray(alpha), band) == may_doubt(NP, alpha, band)
