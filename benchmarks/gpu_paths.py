"""The two paths a photo takes in benchmarks/gpu.py, timed stage by stage, and their images/s.

``Pipeline`` is one worker process's work on one photo, without S3 and status:
decode → (upload) → matting → foreground → bokeh → (download) → encode, on the GPU path with a
backend (``workers.gpu``: CuPy, or its NumPy dry run) or on the CPU path without one (OpenCV
renderer, onnxruntime on the CPU). ``images_per_second`` runs P spawned processes of it at once
and counts the images they finish in a window after each has warmed up.

Imports nothing the GPU machine lacks beyond the wheels benchmarks/gpu_pack.py carries there.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import queue
import shutil
import statistics
import subprocess
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from infra.models import ModelStore
from infra.params import BlurParams
from infra.settings import Settings
from producer.local.samples import SAMPLES
from workers.decode import decode
from workers.encode import encode
from workers.gpu import render as gpu_render
from workers.gpu.backend import Array, Backend, choose
from workers.gpu.matting import DeviceMatting
from workers.matting import Matting
from workers.render import render

PHOTOS = SAMPLES[:4]
"""Astronaut, Grace Hopper, the cat, the coffee cup: two portraits, a pet, a product."""
STRENGTH = 50
WARM_UP_S = 300.0
"""Longest wait for a process to build its sessions and blur its first photo, or to report."""


def photo(number: int, size: tuple[int, int]) -> bytes:
    """A distinct JPEG of the given size made from one of the real sample photos."""
    sample = PHOTOS[number % len(PHOTOS)]
    image = Image.fromarray(sample.load()).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    pixels = np.roll(np.asarray(image), number * 7, axis=1)  # no two photos alike
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class Timer:
    """Times named stages in ms, the backend's queued work waited for at both ends of each, and
    notes the largest the backend's memory pool grew (bytes) after any stage."""

    def __init__(self, backend: Backend | None) -> None:
        self.backend = backend
        self.ms: dict[str, list[float]] = {}
        self.pool_peak = 0

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Times one stage under name."""
        if self.backend is not None:
            self.backend.synchronize()
        begin = time.perf_counter()
        yield
        if self.backend is not None:
            self.backend.synchronize()
            self.pool_peak = max(self.pool_peak, self.backend.memory_bytes())
        self.ms.setdefault(name, []).append((time.perf_counter() - begin) * 1000.0)

    def medians(self) -> dict[str, float]:
        """Each stage's median ms."""
        return {name: statistics.median(values) for name, values in self.ms.items()}


@dataclass(frozen=True)
class Blurred:
    """One photo through a path: its pixels, its matte (on the backend, if any), the picture."""

    rgb: NDArray[np.uint8]
    alpha: Array
    picture: NDArray[np.uint8]


class Pipeline:
    """One worker process's work on a photo, on the GPU path (a backend) or the CPU path (None)."""

    def __init__(self, backend: Backend | None, model: str, threads: int = 0) -> None:
        self.backend = backend
        self.settings = Settings()
        matting = Matting(model, ModelStore(self.settings.model_dir), threads=threads)
        self.matting: Matting | DeviceMatting = (
            matting if backend is None else DeviceMatting(matting, backend)
        )
        self.params = BlurParams(strength=STRENGTH, model=model)

    def blur(self, data: bytes, timer: Timer) -> Blurred:
        """JPEG bytes in, the blurred photo encoded as JPEG; returns the arrays on the way."""
        with timer("decode"):
            image = decode(data, max_pixels=self.settings.max_input_pixels)
        if self.backend is None:
            with timer("matting"):
                alpha, _ = self.matting.predict_with_confidence(image.rgb)
            picture = render(image.rgb, alpha, self.params, stage=timer)
        else:
            with timer("upload"):
                rgb = self.backend.asarray(image.rgb)
            with timer("matting"):
                alpha, _ = self.matting.predict_with_confidence(rgb)
            on_device = gpu_render.render(self.backend, rgb, alpha, self.params, stage=timer)
            with timer("download"):
                picture = self.backend.asnumpy(on_device)
        with timer("encode"):
            encode(picture, icc_profile=image.icc_profile)
        return Blurred(image.rgb, alpha, picture)


@dataclass(frozen=True)
class RateJob:
    """What each process of an images/s run does: its path, model, threads, photos, window."""

    renderer: str  # "opencv" (the CPU path), "cupy" or "numpy", as workers.gpu.backend.choose
    model: str
    threads: int
    photos: tuple[bytes, ...]
    window: float


def images_per_second(job: RateJob, processes: int) -> dict[str, Any]:
    """Images/s of ``processes`` spawned processes started together, each process's own count,
    its memory pool now and at its peak, and nvidia-smi's MiB for it halfway through."""
    context = multiprocessing.get_context("spawn")  # a CUDA context does not survive a fork
    go, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_work, args=(job, number, go, results))
        for number in range(processes)
    ]
    for worker in workers:
        worker.start()
    _collect(results, workers)  # each has warmed up
    go.set()
    time.sleep(job.window / 2)
    smi = nvidia_smi_memory()
    reports = _collect(results, workers)
    for worker in workers:
        worker.join()
    for report in reports:
        report["nvidia_smi_mib"] = smi.get(report["pid"])
    rate = sum(report["images"] / report["seconds"] for report in reports)
    return {"processes": processes, "images_per_s": rate, "per_process": reports}


def _collect(results: Any, workers: list[Any]) -> list[dict[str, Any]]:
    """One message from each process; stops them all and exits with the reason when one fails,
    dies or takes longer than WARM_UP_S."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + WARM_UP_S
    while len(messages) < len(workers):
        try:
            message = results.get(timeout=1.0)
        except queue.Empty:
            died = [worker.exitcode for worker in workers if worker.exitcode not in (None, 0)]
            if not died and time.monotonic() < deadline:
                continue
            message = {"error": f"a process died (exit codes {died}) or took over {WARM_UP_S} s"}
        if "error" in message:
            for worker in workers:
                worker.terminate()
            raise SystemExit(f"a benchmark process failed: {message['error']}")
        messages.append(message)
    return messages


def _work(job: RateJob, number: int, go: Any, results: Any) -> None:
    """One process of an images/s run: warm up, wait for the others, blur until the window ends."""
    try:
        pipeline = Pipeline(choose(job.renderer), job.model, job.threads)
        timer = Timer(pipeline.backend)
        pipeline.blur(job.photos[number % len(job.photos)], timer)  # sessions, kernels, pool
        results.put({"ready": os.getpid()})
        go.wait()
        begin = time.perf_counter()
        finished: list[float] = []
        while not finished or finished[-1] < job.window:
            pipeline.blur(job.photos[(number + len(finished) + 1) % len(job.photos)], timer)
            finished.append(time.perf_counter() - begin)
        # Whole images to the last one finished in the window; the first one if none was.
        inside = [moment for moment in finished if moment <= job.window] or finished[:1]
        backend = pipeline.backend
        results.put(
            {
                "pid": os.getpid(),
                "images": len(inside),
                "seconds": inside[-1],
                "pool_bytes": backend.memory_bytes() if backend else 0,
                "pool_peak_bytes": timer.pool_peak,
            }
        )
    except Exception:
        results.put({"error": traceback.format_exc()})


def nvidia_smi_memory() -> dict[int, int]:
    """Each compute process's GPU memory in MiB by pid, as nvidia-smi reports it (onnxruntime's
    arena and the CUDA context included); empty without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return {}
    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
    lines = subprocess.run(query, capture_output=True, text=True, timeout=60).stdout.splitlines()
    pairs = [line.split(",") for line in lines if line.count(",") == 1]
    return {
        int(pid): int(mib) for pid, mib in pairs if pid.strip().isdigit() and mib.strip().isdigit()
    }
