"""ONNX Runtime sessions, built lazily once per process and cached by model name.

Nothing here runs at import: Celery's prefork pool forks its children from the parent, and a
CUDA context does not survive a fork, so each child builds its own sessions on first use.
Execution providers are chosen in one place, ``providers()``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from infra.models import ModelStore

# The output each model's matte comes from: ISNet has 12 outputs (side outputs and features),
# only ``output`` is the final matte; for U²-Net-p the first of its 7 outputs is the fused one.
_OUTPUTS: dict[str, str | None] = {"isnet": "output", "u2netp": None}

_sessions: dict[str, ModelSession] = {}
_lock = threading.Lock()


def providers() -> list[str]:
    """Execution providers in order of preference: CUDA when this onnxruntime has it, then CPU."""
    available = ort.get_available_providers()
    preferred = [name for name in ("CUDAExecutionProvider",) if name in available]
    return [*preferred, "CPUExecutionProvider"]


class ModelSession:
    """One ONNX model in onnxruntime: a 1×3×S×S float32 tensor in, one float32 output out."""

    def __init__(self, path: Path, *, output: str | None = None, threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0 lets onnxruntime use every core
        # By default the pool's threads spin after each run, taking the cores from the OpenCV
        # stages that follow (foreground and bokeh ran 1.5x slower at 12 MP).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=providers())
        model_input = self._session.get_inputs()[0]
        self.input_name: str = model_input.name
        self.input_shape = tuple(model_input.shape)
        self.output_name: str = output or self._session.get_outputs()[0].name

    @property
    def input_size(self) -> int:
        """Side of the square image the model takes."""
        return int(self.input_shape[-1])

    @property
    def active_providers(self) -> list[str]:
        """The providers onnxruntime actually enabled for this session."""
        return list(self._session.get_providers())

    def run(self, tensor: NDArray[np.float32]) -> NDArray[np.float32]:
        """Run the model on one NCHW tensor and return the chosen output only."""
        if tensor.shape != self.input_shape or tensor.dtype != np.float32:
            raise ValueError(
                f"expected float32 {self.input_shape}, got {tensor.dtype} {tuple(tensor.shape)}"
            )
        (result,) = self._session.run([self.output_name], {self.input_name: tensor})
        return np.asarray(result, dtype=np.float32)


def get_session(name: str, store: ModelStore, threads: int = 0) -> ModelSession:
    """The process's session for a model, built on first use (weights fetched if needed)."""
    session = _sessions.get(name)
    if session is not None:
        return session
    with _lock:
        # Another thread may have built it while this one waited for the lock.
        if name not in _sessions:
            output = _OUTPUTS.get(name)
            _sessions[name] = ModelSession(store.path(name), output=output, threads=threads)
        return _sessions[name]
