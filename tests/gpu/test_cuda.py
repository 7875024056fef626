"""On a machine with an NVIDIA GPU and onnxruntime-gpu: CUDA is used and agrees with the CPU."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.matting.sessions import ModelSession, providers

pytestmark = pytest.mark.gpu


def test_cuda_provider_is_preferred_and_active() -> None:
    assert providers()[0] == "CUDAExecutionProvider"
    session = ModelSession(ModelStore(Settings().model_dir).path("u2netp"))
    assert session.active_providers[0] == "CUDAExecutionProvider"


def test_gpu_and_cpu_mattes_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import workers.matting.sessions as sessions
    from workers.matting.models import u2netp_alpha

    path = ModelStore(Settings().model_dir).path("u2netp")
    gpu = u2netp_alpha(ModelSession(path), data.astronaut())  # type: ignore[no-untyped-call]
    monkeypatch.setattr(sessions, "providers", lambda: ["CPUExecutionProvider"])
    cpu = u2netp_alpha(ModelSession(path), data.astronaut())  # type: ignore[no-untyped-call]
    assert np.abs(gpu - cpu).max() < 0.02


def test_io_binding_keeps_the_matte_on_the_device_and_equals_the_host_run() -> None:
    import cupy

    from workers.gpu.backend import cupy_backend

    backend = cupy_backend()
    path = ModelStore(Settings().model_dir).path("u2netp")
    session = ModelSession(path, cuda_device=int(cupy.cuda.Device().id))
    assert session.active_providers[0] == "CUDAExecutionProvider"
    side = session.input_size
    rng = np.random.default_rng(17)
    tensor = rng.uniform(-2.0, 2.0, (1, 3, side, side)).astype(np.float32)
    # The input is made by a CuPy kernel just before the run: the run must wait for it.
    on_device = session.run_on_device(backend, cupy.asarray(tensor) * 1.0)
    assert isinstance(on_device, cupy.ndarray) and on_device.shape == session.output_shape
    host = ModelSession(path).run(tensor)
    assert float(abs(on_device.get() - host).max()) < 1e-2
    assert host.std() > 1e-3  # a real output, not a constant both could agree on
