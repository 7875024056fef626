"""``blurq worker --gpu``: finding the GPUs, sizing the processes, and supervising the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from workers.cli import worker
from workers.gpu import placement
from workers.gpu.failures import is_gpu_failure
from workers.gpu.placement import (
    GIB,
    MAX_PROCESSES_PER_GPU,
    NO_GPU_EXIT,
    NVIDIA_SMI,
    PROCESS_MEMORY_BYTES,
    Gpu,
    cpu_cores,
    find_gpus,
    parse_gpus,
    plan,
    supervise,
    worker_commands,
)

H200_MIB = 143771  # what nvidia-smi reports for an H200's memory.total


def test_parse_nvidia_smi_lines() -> None:
    gpus = parse_gpus(f"0, {H200_MIB}\n1, 81559\n\n")
    assert gpus == (Gpu(0, H200_MIB * 2**20), Gpu(1, 81559 * 2**20))
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_gpus("0, [N/A]\n")


def test_find_gpus_asks_nvidia_smi_and_finds_none_without_it() -> None:
    asked: list[Sequence[str]] = []

    def fake(command: Sequence[str]) -> str:
        asked.append(command)
        return "0, 24576\n"

    assert find_gpus(fake) == (Gpu(0, 24 * GIB),)
    assert asked == [NVIDIA_SMI]

    def missing(command: Sequence[str]) -> str:
        raise FileNotFoundError(command[0])

    def no_driver(command: Sequence[str]) -> str:
        raise subprocess.CalledProcessError(9, list(command))

    assert find_gpus(missing) == () and find_gpus(no_driver) == ()


def test_cores_are_bounded_by_the_containers_cpu_limit(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    assert cpu_cores(cpu_max) == affinity  # no cgroup file
    cpu_max.write_text("max 100000\n")
    assert cpu_cores(cpu_max) == affinity
    cpu_max.write_text("100000 100000\n")
    assert cpu_cores(cpu_max) == 1
    cpu_max.write_text("50000 100000\n")  # half a core still runs one process
    assert cpu_cores(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 8) * 100000} 100000\n")  # a limit above the affinity
    assert cpu_cores(cpu_max) == affinity


def test_plan_is_bounded_by_memory_cores_and_the_cap() -> None:
    small = Gpu(0, 16 * GIB)  # memory decides: 16 // 6 = 2
    assert plan([small], cores=32).processes == 16 * GIB // PROCESS_MEMORY_BYTES == 2
    assert "GPU memory" in plan([small], cores=32).reason.split("(")[0]
    big = [Gpu(0, 140 * GIB), Gpu(1, 140 * GIB)]  # cores decide: 12 // 2 = 6
    assert plan(big, cores=12).processes == 6
    assert "12 CPU cores / 2 GPUs" in plan(big, cores=12).reason.split("(")[0]
    assert plan(big, cores=128).processes == MAX_PROCESSES_PER_GPU  # the cap decides
    # A GPU too small for one budget, or fewer cores than GPUs, still gets one process.
    assert plan([Gpu(0, 4 * GIB)], cores=8).processes == 1
    assert plan([Gpu(0, 4 * GIB)], cores=8).describe().startswith("GPU 0: 4 GiB, 1 process (")
    assert plan(big, cores=1).processes == 1
    # The smallest GPU sizes all of them: one process count per worker.
    assert plan([Gpu(0, 140 * GIB), Gpu(1, 12 * GIB)], cores=64).processes == 2


def test_plan_override_and_description() -> None:
    placed = plan([Gpu(0, 140 * GIB), Gpu(3, 140 * GIB)], cores=16, processes_per_gpu=5)
    assert placed.processes == 5 and "as given" in placed.reason
    lines = placed.describe().splitlines()
    assert lines[0] == "GPU 0: 140 GiB, 5 processes (worker blurq-gpu0)"
    assert lines[1].startswith("GPU 3:") and lines[2] == placed.reason
    with pytest.raises(ValueError):
        plan([], cores=16)


def test_each_gpus_worker_sees_only_its_gpu_on_the_gpu_path() -> None:
    placed = plan([Gpu(0, 80 * GIB), Gpu(1, 80 * GIB)], cores=16)
    commands = worker_commands(placed, ["--queues", "bulk"])
    assert len(commands) == 2
    for index, (argv, env) in enumerate(commands):
        assert argv[:4] == [sys.executable, "-m", "producer.cli", "worker"]
        assert "--gpu" not in argv and argv[4:6] == ["--queues", "bulk"]
        assert argv[argv.index("--concurrency") + 1] == str(placed.processes)
        assert argv[argv.index("--name") + 1] == f"blurq-gpu{index}@%h"
        assert env == {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": str(index),
            "BLURQ_RENDERER": "cupy",
        }


def _fake_nvidia_smi(folder: Path, script: str) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


@pytest.mark.parametrize("script", [None, "echo 'NVIDIA-SMI has failed' >&2; exit 9", "true"])
def test_gpu_flag_without_a_gpu_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None
) -> None:
    if script is not None:
        _fake_nvidia_smi(tmp_path, script)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi, a failing one, one listing none
    result = CliRunner().invoke(worker, ["--gpu"])
    assert result.exit_code == NO_GPU_EXIT == 2
    assert "no GPU found" in result.output


def test_gpu_flag_prints_the_plan_and_runs_a_worker_per_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_nvidia_smi(tmp_path, f"echo '0, {H200_MIB}'; echo '1, {H200_MIB}'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ran: list[list[tuple[list[str], dict[str, str]]]] = []

    def record(commands: list[tuple[list[str], dict[str, str]]]) -> int:
        ran.append(commands)
        return 0

    monkeypatch.setattr(placement, "supervise", record)
    monkeypatch.setattr(placement, "preflight", lambda gpu: "")
    result = CliRunner().invoke(worker, ["--gpu", "--processes-per-gpu", "3", "-Q", "bulk"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "GPU 0: 140 GiB, 3 processes (worker blurq-gpu0)"
    (commands,) = ran
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in commands] == ["0", "1"]
    assert all(argv[argv.index("--queues") + 1] == "bulk" for argv, _ in commands)


def test_gpu_flag_refuses_to_start_workers_the_gpu_path_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_nvidia_smi(tmp_path, f"echo '0, {H200_MIB}'")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(placement, "supervise", lambda commands: pytest.fail("started workers"))
    result = CliRunner().invoke(worker, ["--gpu"])  # a real check: no CuPy on this machine
    assert result.exit_code == NO_GPU_EXIT
    assert "the GPU path cannot start on GPU 0: " in result.output
    assert "renderer cupy needs CuPy" in result.output


def test_processes_per_gpu_goes_with_gpu() -> None:
    result = CliRunner().invoke(worker, ["--processes-per-gpu", "2"])
    assert result.exit_code == 2 and "goes with --gpu" in result.output


SLEEPER = (
    "import os, pathlib, signal, sys, time\n"
    "code = 0 if os.environ.get('BLURQ_PROBE') == 'seen' else 4\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(code))\n"
    "pathlib.Path(sys.argv[1]).touch()\n"
    "time.sleep(60)\n"
    "sys.exit(5)"
)
"""A stand-in worker: touches its argument once it listens for SIGTERM, then on SIGTERM exits 0
(Celery's warm shutdown) when it was given the environment, 4 when not; 5 if nobody stops it."""
PROBE = {"BLURQ_PROBE": "seen"}


def test_one_worker_failing_stops_the_others_and_fails(tmp_path: Path) -> None:
    commands = [
        ([sys.executable, "-c", SLEEPER, str(tmp_path / "ready")], PROBE),
        ([sys.executable, "-c", "import time, sys; time.sleep(1); sys.exit(3)"], PROBE),
    ]
    assert supervise(commands) == 1  # the sleeper was stopped, not waited out for 60 s


def test_sigterm_is_passed_on_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    ready = [tmp_path / "first", tmp_path / "second"]

    def stop_when_ready() -> None:
        while not all(path.exists() for path in ready):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    commands = [([sys.executable, "-c", SLEEPER, str(path)], PROBE) for path in ready]
    assert supervise(commands) == 0
    assert signal.getsignal(signal.SIGTERM) is before  # the handler before it is back


ORT_CUDA_OOM = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory"


def test_onnxruntime_errors_naming_cuda_are_gpu_failures() -> None:
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

    assert is_gpu_failure(RuntimeException(ORT_CUDA_OOM))
    assert is_gpu_failure(Fail("CUBLAS failure 13: CUBLAS_STATUS_EXECUTION_FAILED"))
    assert is_gpu_failure(Fail("CUDNN_STATUS_INTERNAL_ERROR ; GPU=0"))
    assert not is_gpu_failure(Fail("Invalid rank for input: input.1 Got: 3 Expected: 4"))
    # Only onnxruntime's own errors are read for the words: ours may name CUDA in passing.
    assert not is_gpu_failure(RuntimeError("the GPU path needs onnxruntime's CUDA provider"))
    assert not is_gpu_failure(ValueError("bad image"))


def test_a_gpu_failure_anywhere_in_the_chain_counts() -> None:
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    try:
        try:
            raise RuntimeException(ORT_CUDA_OOM)
        except RuntimeException as device:
            raise ValueError("matting failed") from device
    except ValueError as wrapped:
        assert is_gpu_failure(wrapped)
    try:
        try:
            raise RuntimeException(ORT_CUDA_OOM)
        except RuntimeException:
            raise KeyError("while handling it") from None  # suppressed: no longer its cause
    except KeyError as unrelated:
        assert not is_gpu_failure(unrelated)


def test_cupy_errors_are_gpu_failures_without_importing_cupy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "cupy" not in sys.modules  # this machine: no CuPy, and classifying imports none
    assert not is_gpu_failure(MemoryError("host memory"))
    assert "cupy" not in sys.modules

    class OutOfMemoryError(MemoryError): ...

    class CUDARuntimeError(RuntimeError): ...

    class CUDADriverError(RuntimeError): ...

    class CuFFTError(RuntimeError): ...

    cuda = SimpleNamespace(
        memory=SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        runtime=SimpleNamespace(CUDARuntimeError=CUDARuntimeError),
        driver=SimpleNamespace(CUDADriverError=CUDADriverError),
    )
    monkeypatch.setitem(sys.modules, "cupy", SimpleNamespace(cuda=cuda))
    for error in (OutOfMemoryError, CUDARuntimeError, CUDADriverError):
        assert is_gpu_failure(error("cudaErrorIllegalAddress"))
    assert not is_gpu_failure(CuFFTError("CUFFT_ALLOC_FAILED"))  # cuFFT not loaded: not its
    monkeypatch.setitem(sys.modules, "cupy.cuda.cufft", SimpleNamespace(CuFFTError=CuFFTError))
    assert is_gpu_failure(CuFFTError("CUFFT_ALLOC_FAILED"))
    assert not is_gpu_failure(MemoryError("host memory"))


def test_the_done_line_names_the_gpu_paths_backend_and_its_gpu_memory() -> None:
    from workers.gpu.backend import Backend, numpy_backend
    from workers.tasks import _renderer

    assert _renderer(None) == "" and _renderer(numpy_backend()) == "; renderer numpy"
    pool = SimpleNamespace(total_bytes=lambda: 1536 * 2**20)
    runtime = SimpleNamespace(memGetInfo=lambda: (100 * GIB, 140 * GIB))  # (free, total)
    xp = SimpleNamespace(
        get_default_memory_pool=lambda: pool, cuda=SimpleNamespace(runtime=runtime)
    )
    on_gpu = Backend("cupy", xp, SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type]
    assert _renderer(on_gpu) == (
        "; renderer cupy, GPU memory: CuPy pool 1536 MiB in this process, "
        "device 40960 of 143360 MiB in use"
    )
