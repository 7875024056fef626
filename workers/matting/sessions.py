"""ONNX Runtime sessions, built lazily once per process and cached by model name and device.

Nothing here runs at import: Celery's prefork pool forks its children from the parent, and a
CUDA context does not survive a fork, so each child builds its own sessions on first use.
Execution providers are chosen in one place: ``providers()`` for the CPU path (CUDA when this
onnxruntime has it, then CPU), ``cuda_providers(device)`` for the GPU path, where a session that
does not run on the GPU is refused at creation instead of running slowly on the CPU.

On the GPU path ``ModelSession.run_on_device`` binds CuPy arrays with onnxruntime's I/O binding,
so the tensor goes in and the matte comes out in device memory without a host copy.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from infra.models import ModelStore

if TYPE_CHECKING:
    from workers.gpu.backend import Array, Backend

# The output each model's matte comes from: ISNet has 12 outputs (side outputs and features),
# only ``output`` is the final matte; for U²-Net-p the first of its 7 outputs is the fused one.
_OUTPUTS: dict[str, str | None] = {"isnet": "output", "u2netp": None}

CUDA = "CUDAExecutionProvider"

_sessions: dict[tuple[str, int | None], ModelSession] = {}
_lock = threading.Lock()


def providers() -> list[str]:
    """Execution providers of the CPU path in order of preference: CUDA when this onnxruntime
    has it, then CPU."""
    available = ort.get_available_providers()
    preferred = [name for name in (CUDA,) if name in available]
    return [*preferred, "CPUExecutionProvider"]


def cuda_providers(device: int) -> list[str | tuple[str, dict[str, Any]]]:
    """Execution providers of the GPU path: the CUDA provider on one device, nothing else."""
    # The arena grows by what is asked, not to the next power of two: several processes share
    # a GPU, and doubling would hold up to twice the activations' memory in each.
    return [(CUDA, {"device_id": device, "arena_extend_strategy": "kSameAsRequested"})]


class ModelSession:
    """One ONNX model in onnxruntime: a 1×3×S×S float32 tensor in, one float32 output out.

    With ``cuda_device`` the session runs on that CUDA device or is not made: ``RuntimeError``
    when this onnxruntime has no CUDA provider, or did not enable it (its Python layer falls
    back to the CPU with only a warning when CUDA or cuDNN fail to load), and nodes the CUDA
    provider cannot take are an error at creation rather than a silent CPU island in the middle
    of the graph.
    """

    def __init__(
        self,
        path: Path,
        *,
        output: str | None = None,
        threads: int = 0,
        cuda_device: int | None = None,
    ) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0 lets onnxruntime use every core
        # By default the pool's threads spin after each run, taking the cores from the OpenCV
        # stages that follow (foreground and bokeh ran 1.5x slower at 12 MP).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = _open(path, options, cuda_device)
        self.cuda_device = cuda_device
        model_input = self._session.get_inputs()[0]
        self.input_name: str = model_input.name
        self.input_shape = tuple(model_input.shape)
        found = {one.name: one for one in self._session.get_outputs()}
        model_output = found[output] if output else self._session.get_outputs()[0]
        self.output_name: str = model_output.name
        self.output_shape = tuple(model_output.shape)

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
        self._check(tensor)
        (result,) = self._session.run([self.output_name], {self.input_name: tensor})
        return np.asarray(result, dtype=np.float32)

    def run_on_device(self, backend: Backend, tensor: Array) -> Array:
        """``run`` on an array of the backend's namespace; the output is one of its arrays too.

        On CuPy the contiguous float32 input and a new output array are bound in place with
        I/O binding: no copy through the host. onnxruntime runs on a stream of its own and does
        not wait for CuPy's queued work before it starts, so CuPy's stream is synchronised
        first; onnxruntime synchronises its own stream before ``run_with_iobinding`` returns, so
        the output is complete when CuPy reads it. On NumPy this is ``run``.
        """
        if not backend.on_gpu:
            return self.run(tensor)
        if self.cuda_device is None:
            raise RuntimeError("run_on_device on the GPU needs a session made with cuda_device")
        self._check(tensor)
        xp = backend.xp
        tensor = xp.ascontiguousarray(tensor)
        output = xp.empty(self.output_shape, dtype=xp.float32)
        binding = self._session.io_binding()
        for bind, name, array in (
            (binding.bind_input, self.input_name, tensor),
            (binding.bind_output, self.output_name, output),
        ):
            bind(name, "cuda", self.cuda_device, np.float32, list(array.shape), array.data.ptr)
        backend.synchronize()
        self._session.run_with_iobinding(binding)
        return output

    def _check(self, tensor: Array) -> None:
        """ValueError unless the tensor has the model's input shape and is float32."""
        if tuple(tensor.shape) != self.input_shape or tensor.dtype != np.float32:
            raise ValueError(
                f"expected float32 {self.input_shape}, got {tensor.dtype} {tuple(tensor.shape)}"
            )


def _open(path: Path, options: ort.SessionOptions, cuda_device: int | None) -> ort.InferenceSession:
    """The onnxruntime session: the CPU path's providers, or CUDA on cuda_device and only there."""
    if cuda_device is None:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers())
    refused = f"{path.name}: the GPU path needs onnxruntime's {CUDA} on device {cuda_device}"
    if CUDA not in ort.get_available_providers():
        raise RuntimeError(f"{refused}; this onnxruntime has none (install onnxruntime-gpu)")
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=cuda_providers(cuda_device)
        )
    except Exception as error:  # onnxruntime's own exception types derive from Exception only
        raise RuntimeError(f"{refused}: {error}") from error
    active = session.get_providers()
    if active[:1] != [CUDA]:  # the Python layer falls back with a warning when CUDA fails to load
        raise RuntimeError(f"{refused}, but the session runs on {active}")
    return session


def get_session(
    name: str, store: ModelStore, threads: int = 0, *, backend: Backend | None = None
) -> ModelSession:
    """The process's session for a model, built on first use (weights fetched if needed).

    A backend on the GPU gets a session on CuPy's current CUDA device (the process's only one
    in a GPU worker, where ``CUDA_VISIBLE_DEVICES`` names a single GPU); any other gets the CPU
    path's session.
    """
    device = int(backend.xp.cuda.Device().id) if backend is not None and backend.on_gpu else None
    key = (name, device)
    session = _sessions.get(key)
    if session is not None:
        return session
    with _lock:
        # Another thread may have built it while this one waited for the lock.
        if key not in _sessions:
            output = _OUTPUTS.get(name)
            path = store.path(name)
            _sessions[key] = ModelSession(path, output=output, threads=threads, cuda_device=device)
        return _sessions[key]
