"""Which arrays the image stages compute on: one place decides, as for the ONNX provider.

``choose(renderer)`` reads the ``BLURQ_RENDERER`` setting's values: ``opencv`` is the CPU path
(the default without a GPU, ``None`` here), ``cupy`` the GPU path on CuPy arrays, ``numpy`` the GPU
path's own code on NumPy arrays (what the CPU test suite runs), and ``auto`` takes ``cupy`` when
CuPy is installed and sees a CUDA device, else ``opencv``.

Nothing here touches CUDA at import: Celery's prefork children build their own context on first
use (a CUDA context does not survive a fork), so CuPy is imported only when ``cupy`` is chosen.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

RENDERERS = ("auto", "opencv", "numpy", "cupy")

Array = Any
"""An array of the backend's namespace: ``numpy.ndarray`` or ``cupy.ndarray``."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and its companions: ndimage, FFT, sparse; host copies, memory."""

    name: str  # "numpy" or "cupy"
    xp: ModuleType  # numpy or cupy
    ndimage: ModuleType  # scipy.ndimage or cupyx.scipy.ndimage
    fft: ModuleType  # scipy.fft or cupyx.scipy.fft

    @property
    def on_gpu(self) -> bool:
        """True when the arrays live in GPU memory."""
        return self.name == "cupy"

    @property
    def sparse(self) -> ModuleType:
        """scipy.sparse or cupyx.scipy.sparse, the sparse matrices of this namespace."""
        # A property, not a field: it follows from the name, and a Backend built by hand (as the
        # worker's tests do) needs no module it does not use.
        return importlib.import_module("cupyx.scipy.sparse" if self.on_gpu else "scipy.sparse")

    def asarray(self, array: object, dtype: Any = None) -> Array:
        """An array of this namespace (copied to the device from the host if need be)."""
        return self.xp.asarray(array, dtype=dtype)

    def asnumpy(self, array: Array) -> NDArray[Any]:
        """A NumPy array on the host (copied from the device if need be)."""
        if self.on_gpu:
            return np.asarray(array.get())
        return np.asarray(array)

    def synchronize(self) -> None:
        """Wait for the device's queued work (timings need it; NumPy has none queued)."""
        if self.on_gpu:
            self.xp.cuda.get_current_stream().synchronize()

    def memory_bytes(self) -> int:
        """Device memory this process's array pool holds now (0 on the host)."""
        if not self.on_gpu:
            return 0
        return int(self.xp.get_default_memory_pool().total_bytes())


@functools.cache
def choose(renderer: str) -> Backend | None:
    """The backend of a ``BLURQ_RENDERER`` value; None means the OpenCV path on the CPU.

    Raises ``ValueError`` for an unknown value and ``RuntimeError`` when ``cupy`` is asked for on a
    machine where CuPy or a CUDA device is missing (a GPU worker must not fall back silently).
    The answer is kept for the process: its devices do not come and go.
    """
    if renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {RENDERERS}, got {renderer!r}")
    if renderer == "auto":
        renderer = "cupy" if cuda_available() else "opencv"
    if renderer == "opencv":
        return None
    if renderer == "numpy":
        return numpy_backend()
    if not cuda_available():
        raise RuntimeError("renderer cupy needs CuPy (the gpu extra) and a CUDA device; none found")
    return cupy_backend()


@functools.cache
def numpy_backend() -> Backend:
    """The GPU path's code on NumPy arrays."""
    import scipy.fft
    import scipy.ndimage

    return Backend("numpy", np, scipy.ndimage, scipy.fft)


@functools.cache
def cupy_backend() -> Backend:
    """The GPU path on CuPy arrays, on the process's current CUDA device."""
    import cupy
    import cupyx.scipy.fft
    import cupyx.scipy.ndimage

    return Backend("cupy", cupy, cupyx.scipy.ndimage, cupyx.scipy.fft)


def cuda_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return False
    import cupy

    try:
        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # CuPy raises its own CUDARuntimeError when there is no driver or device
        return False
