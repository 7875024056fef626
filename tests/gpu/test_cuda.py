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
    gpu = u2netp_alpha(ModelSession(path), data.astronaut())
    monkeypatch.setattr(sessions, "providers", lambda: ["CPUExecutionProvider"])
    cpu = u2netp_alpha(ModelSession(path), data.astronaut())
    assert np.abs(gpu - cpu).max() < 0.02
