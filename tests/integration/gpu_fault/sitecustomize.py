"""A GPU failure injected into the worker processes of ``test_faults.py`` (its gpu tests).

Python imports ``sitecustomize`` at start-up from the path; the test puts this folder first on
the workers' ``PYTHONPATH``. With ``TEST_GPU_FAULT`` naming a file, the matting network's run
raises what onnxruntime raises when its CUDA device fails: once on the whole machine (in the
process whose run creates the file first), or in every run with ``TEST_GPU_FAULT_ALWAYS=1``.
Nothing of this is in the product's modules.
"""

from __future__ import annotations

import os

FAULT = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 700: an illegal memory access"


def _inject(marker: str, always: bool) -> None:
    from typing import Any

    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    from workers.matting.sessions import ModelSession

    run = ModelSession.run

    def failing(self: ModelSession, tensor: Any) -> Any:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            if not always:
                return run(self, tensor)
        raise RuntimeException(FAULT)

    ModelSession.run = failing  # type: ignore[method-assign]


if os.environ.get("TEST_GPU_FAULT"):
    _inject(os.environ["TEST_GPU_FAULT"], os.environ.get("TEST_GPU_FAULT_ALWAYS") == "1")
