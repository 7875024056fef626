"""What counts as a GPU failure, which a worker process does not survive.

Out of device memory, a lost or reset device, and errors of CUDA's libraries leave a CUDA context
that cannot be trusted for the next image. The blur task (``workers.tasks``) puts such an image
back to queued and ends its process with ``GPU_FAILURE_EXIT`` before the message is acknowledged:
Celery's ``task_reject_on_worker_lost`` puts the message back on its queue and the prefork pool
starts a fresh process, with a fresh context, in its place. The image's delivery count bounds an
image that fails every process (``max_deliveries``, then ``poison``).

A GPU failure is one of CuPy's CUDA errors (out of memory, runtime, driver, cuFFT, cuBLAS), or
an onnxruntime error whose message names CUDA or one of its libraries; anywhere in the
exception's chain.
"""

from __future__ import annotations

import re
import sys

GPU_FAILURE_EXIT = 75
"""Exit status of a worker process ended by a GPU failure (sysexits' EX_TEMPFAIL: try again)."""

_CUDA_WORDS = re.compile(r"CUDA|cudaError|CUBLAS|CUDNN|CUFFT")
"""What onnxruntime's messages of a failure on the device name (``CUDA failure 2: out of
memory``, ``CUBLAS_STATUS_ALLOC_FAILED``, ``CUDNN_STATUS_EXECUTION_FAILED``)."""


def is_gpu_failure(error: BaseException) -> bool:
    """True when error, or an error it was raised from or while handling, is a GPU failure."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _device_error(current):
            return True
        hidden = current.__suppress_context__  # raise ... from None: not part of the story
        current = current.__cause__ or (None if hidden else current.__context__)
    return False


def _device_error(error: BaseException) -> bool:
    """One exception, without its chain: a CuPy CUDA error, or onnxruntime's naming CUDA."""
    if isinstance(error, _cupy_errors()):
        return True
    module = type(error).__module__ or ""
    return module.startswith("onnxruntime") and bool(_CUDA_WORDS.search(str(error)))


_CUPY_LIBRARY_ERRORS = (
    ("cupy.cuda.cufft", "CuFFTError"),
    ("cupy_backends.cuda.libs.cublas", "CUBLASError"),
)
"""Errors of the CUDA libraries CuPy loads on first use: (module, class)."""


def _cupy_errors() -> tuple[type[BaseException], ...]:
    """CuPy's out-of-memory, CUDA runtime and driver errors, and those of the libraries it has
    loaded; none when CuPy was never imported (nothing can have raised them then, and importing
    it here would start CUDA for nothing)."""
    cupy = sys.modules.get("cupy")
    if cupy is None:
        return ()
    cuda = cupy.cuda
    found = [
        cuda.memory.OutOfMemoryError,
        cuda.runtime.CUDARuntimeError,
        cuda.driver.CUDADriverError,
    ]
    for module, name in _CUPY_LIBRARY_ERRORS:
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)
