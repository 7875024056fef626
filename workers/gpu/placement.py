"""How ``blurq worker --gpu`` places worker processes on a machine's GPUs, and runs them.

One Celery worker per GPU (prefork, node ``blurq-gpu<i>@%h``), started as a child process that
sees only its GPU (``CUDA_VISIBLE_DEVICES``) and computes on it (``BLURQ_RENDERER=cupy``); its
pool has several processes, each with its own CUDA context, ONNX sessions and CuPy memory pool.
Several processes share one GPU because decode, encode and the S3 transfers run on the CPU in
each process: while one process decodes or uploads, the others keep the GPU busy.

Processes per GPU = min(GPU memory // ``PROCESS_MEMORY_BYTES``, CPU cores // GPUs,
``MAX_PROCESSES_PER_GPU``), at least 1, unless given. GPUs are found with ``nvidia-smi``, never
with CUDA in this process: the workers fork their pools, and a CUDA context does not survive a
fork.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

GIB = 1024**3
MIB = 1024**2

PROCESS_MEMORY_BYTES = 6 * GIB
"""GPU memory planned for one worker process on 12 MP photos with the fusion model: a CUDA
context with cuDNN and cuBLAS (about 1 GiB), onnxruntime's arena for ISNet at 1024² (about
1.5 GiB) and the renderer's full-resolution float32 planes and FFT buffers (about 2.5 GiB),
with headroom. An estimate until measured: each task's done line logs its process's pool."""

MAX_PROCESSES_PER_GPU = 8
"""Processes on one GPU at most: kernels of different processes take turns on the GPU rather
than run together, so past the number that hides the CPU stages more only cost memory."""

NVIDIA_SMI = ("nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits")
"""The query that lists the GPUs: one ``index, MiB`` line each."""

NO_GPU_EXIT = 2
"""Exit status of ``blurq worker --gpu`` on a machine where nvidia-smi finds no GPU."""

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""A container's CPU limit under cgroup v2: ``<quota> <period>`` in µs, or ``max <period>``."""

POLL_S = 0.5
"""How often the supervisor looks whether a worker has exited."""

Runner = Callable[[Sequence[str]], str]
"""Runs a command and returns its standard output; raises OSError or CalledProcessError."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi lists it."""

    index: int
    memory_bytes: int


@dataclass(frozen=True)
class Plan:
    """The GPUs, how many worker processes each gets, and why."""

    gpus: tuple[Gpu, ...]
    processes: int
    reason: str

    def describe(self) -> str:
        """The plan for people: one line per GPU, then the reason."""
        lines = [
            f"GPU {gpu.index}: {gpu.memory_bytes / GIB:.0f} GiB, "
            f"{self.processes} process{'es' if self.processes > 1 else ''} "
            f"(worker blurq-gpu{gpu.index})"
            for gpu in self.gpus
        ]
        return "\n".join([*lines, self.reason])


def options(command: Callable[..., None]) -> Callable[..., None]:
    """``--gpu`` and ``--processes-per-gpu``, the options of ``blurq worker`` that plan here."""
    per_gpu = click.option(
        "--processes-per-gpu",
        type=click.IntRange(1, 64),
        help="With --gpu: processes per GPU instead of what GPU memory and CPU cores allow.",
    )
    gpu = click.option(
        "--gpu",
        is_flag=True,
        help="One worker per GPU (node blurq-gpu<i>@%h), several processes each, on the GPU path.",
    )
    return gpu(per_gpu(command))


def run(
    queues: str,
    loglevel: str,
    heartbeat_file: Path | None,
    processes_per_gpu: int | None,
    say: Callable[..., None],
) -> int:
    """Find the GPUs, say the plan, run a worker per GPU on the queues until they exit; the
    exit status. say prints (with ``err=True``: on stderr)."""
    options = ["--queues", queues, "--loglevel", loglevel]
    if heartbeat_file is not None:  # one file for every GPU's worker: docs/gpu.md says why
        options += ["--heartbeat-file", str(heartbeat_file)]
    gpus = find_gpus()
    if not gpus:
        say(
            "no GPU found (nvidia-smi is missing, fails or lists none); without --gpu, blurq "
            "worker runs the CPU path",
            err=True,
        )
        return NO_GPU_EXIT
    placed = plan(gpus, cpu_cores(), processes_per_gpu)
    say(placed.describe())
    problem = preflight(gpus[0])
    if problem:
        say(f"the GPU path cannot start on GPU {gpus[0].index}: {problem}", err=True)
        return NO_GPU_EXIT
    return supervise(worker_commands(placed, options))


PREFLIGHT = (
    "import onnxruntime\n"
    "from workers.gpu.backend import choose\n"
    "choose('cupy')\n"
    "if 'CUDAExecutionProvider' not in onnxruntime.get_available_providers():\n"
    "    raise SystemExit('onnxruntime has no CUDA provider: install the gpu extra')\n"
)
"""What a GPU worker needs before it takes an image: CuPy on a CUDA device, onnxruntime-gpu."""


def preflight(gpu: Gpu) -> str:
    """Why the GPU path cannot start on gpu, or "" when it can; checked in a child process, so
    that this one never makes a CUDA context (its children's pools fork from it)."""
    env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": str(gpu.index)}
    done = subprocess.run(
        [sys.executable, "-c", PREFLIGHT], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        return ""
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def cpu_cores(cpu_max: Path = CPU_MAX) -> int:
    """CPU cores this process may use: its affinity, bounded by the container's CPU limit
    (which the affinity does not show)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        return max(1, min(cores, int(quota) // int(period)))
    except (OSError, ValueError):  # no cgroup v2 file, or "max": no limit
        return cores


def run_command(command: Sequence[str]) -> str:
    """The standard output of a command that must succeed."""
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def find_gpus(run: Runner = run_command) -> tuple[Gpu, ...]:
    """The machine's GPUs from nvidia-smi; none when it is missing or fails (no driver)."""
    try:
        return parse_gpus(run(NVIDIA_SMI))
    except (OSError, subprocess.SubprocessError):
        return ()


def parse_gpus(text: str) -> tuple[Gpu, ...]:
    """GPUs from ``index, memory.total`` lines in MiB; ValueError for any other line."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not all(field.isdigit() for field in fields):
            raise ValueError(f"unexpected nvidia-smi line {line!r}")
        gpus.append(Gpu(int(fields[0]), int(fields[1]) * MIB))
    return tuple(gpus)


def plan(gpus: Sequence[Gpu], cores: int, processes_per_gpu: int | None = None) -> Plan:
    """How many processes each GPU gets: the given number, or what memory, cores and the cap
    allow (the smallest GPU decides for all)."""
    if not gpus:
        raise ValueError("no GPU to plan for")
    if processes_per_gpu is not None:
        return Plan(tuple(gpus), processes_per_gpu, f"{processes_per_gpu} per GPU, as given")
    memory = min(gpu.memory_bytes for gpu in gpus)
    limits = {
        f"GPU memory {memory / GIB:.0f} GiB / {PROCESS_MEMORY_BYTES / GIB:.0f} GiB per process": (
            memory // PROCESS_MEMORY_BYTES
        ),
        f"{cores} CPU cores / {len(gpus)} GPUs": cores // len(gpus),
        "the cap per GPU": MAX_PROCESSES_PER_GPU,
    }
    bound, count = min(limits.items(), key=lambda item: item[1])
    processes = max(1, count)
    reason = f"{processes} per GPU: limited by {bound} (" + ", ".join(
        f"{name} = {value}" for name, value in limits.items()
    )
    return Plan(tuple(gpus), processes, reason + ")")


def worker_commands(placed: Plan, options: Sequence[str]) -> list[tuple[list[str], dict[str, str]]]:
    """The command line and environment of each GPU's Celery worker (options: queues, log
    level and the like, passed on to ``blurq worker``)."""
    commands = []
    for gpu in placed.gpus:
        argv = [sys.executable, "-m", "producer.cli", "worker", *options]
        argv += ["--concurrency", str(placed.processes), "--name", f"blurq-gpu{gpu.index}@%h"]
        env = {
            # nvidia-smi numbers GPUs by PCI bus; CUDA's own default order is fastest first.
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": str(gpu.index),
            "BLURQ_RENDERER": "cupy",
        }
        commands.append((argv, env))
    return commands


def supervise(commands: Sequence[tuple[list[str], dict[str, str]]]) -> int:
    """Run the workers until one exits, then stop the rest (warm shutdown); 0 when all exited 0.

    SIGTERM and SIGINT are passed on to the workers, which run in sessions of their own so that
    a terminal's Ctrl-C reaches them once (a second SIGINT would make Celery stop cold).
    """
    children: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for argv, env in commands:  # a signal while they start: the rest are not started
            if not stopping:
                children.append(
                    subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=True)
                )
        while children and all(child.poll() is None for child in children):
            time.sleep(POLL_S)
        if not stopping:  # once only: a second signal could make Celery stop cold
            forward(signal.SIGTERM, None)
        codes = [child.wait() for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if all(code == 0 for code in codes) else 1
