"""The GPU check's benchmark: 12 MP photos through the GPU path and the CPU path in one run.

Prints, for real sample photos upscaled to --size (4000x3000, as benchmarks/stages.py makes them):

- per-stage ms of the GPU path (decode and encode on the CPU; upload, matting, foreground, bokeh,
  download on the backend), medians over --images photos after a warm-up, the device
  synchronised around each stage; and of the CPU path (OpenCV renderer, onnxruntime on the CPU);
- images/s end to end with P worker processes on the one GPU (each spawned, blurring its own
  photos from JPEG bytes to JPEG bytes; images finished in --window seconds after all have
  warmed up), each process's GPU memory (its CuPy pool now and at its peak; nvidia-smi's figure,
  which counts onnxruntime's arena and the CUDA context too), and the CPU path's images/s with one
  process per two cores; the ratios GPU/CPU;
- agreement: PSNR of the GPU path's picture against the CPU renderer's and the NumPy backend's,
  both given the GPU path's photo and matte, and the mean difference of the two paths' mattes;
- the issue's targets beside the figures, pass or fail.

    python3 benchmarks/gpu.py --backend cupy --json $OUT/gpu.json      # on the GPU machine
    .venv/bin/python benchmarks/gpu.py --backend numpy --size 320x240 --images 2 \\
        --processes 1 --window 2                                         # the dry run, here

``--backend numpy`` runs the GPU path's own code on NumPy: every figure is made, none is a GPU's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gpu_paths import (  # beside this script
    STRENGTH,
    Blurred,
    Pipeline,
    RateJob,
    Timer,
    images_per_second,
    photo,
)
from numpy.typing import NDArray

from infra.params import MATTING_MODELS
from workers.gpu import render as gpu_render
from workers.gpu.backend import choose, numpy_backend
from workers.render import render

TARGETS = {
    "images_per_s": (">=", 40.0),
    "matting_ms": ("<=", 15.0),
    "bokeh_ms": ("<=", 10.0),
    "psnr_db": (">=", 45.0),
}
"""Issue 17's targets for one H200 and 12 MP photos."""
AGREEMENT_PHOTOS = 2
"""Photos whose pictures are rendered again by the CPU renderer and the NumPy backend."""


def stage_run(pipeline: Pipeline, photos: list[bytes]) -> tuple[Timer, list[Blurred]]:
    """Each photo through the pipeline after one warm-up (sessions, kernels, memory pool); the
    stage times, and the first photos' arrays for the agreement."""
    pipeline.blur(photos[0], Timer(pipeline.backend))
    timer = Timer(pipeline.backend)
    kept = []
    for number, data in enumerate(photos):
        blurred = pipeline.blur(data, timer)
        if number < AGREEMENT_PHOTOS:
            kept.append(blurred)
    return timer, kept


def psnr(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float | None:
    """PSNR in dB of two 8-bit pictures; None when they are identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return None if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def agreement(gpu: Pipeline, gpu_out: list[Blurred], cpu_out: list[Blurred]) -> dict[str, Any]:
    """The GPU picture against the CPU renderer's and the NumPy backend's for the same photo and
    matte; the mean absolute difference of the GPU and CPU paths' mattes of the same photo."""
    assert gpu.backend is not None
    figures: dict[str, list[float | None]] = {"psnr_vs_cpu_db": [], "psnr_vs_numpy_db": []}
    figures["matte_mean_abs_diff"] = []
    for ours, theirs in zip(gpu_out, cpu_out, strict=True):
        alpha = gpu.backend.asnumpy(ours.alpha)
        cpu = render(ours.rgb, alpha, gpu.params)
        host = numpy_backend()
        on_numpy = host.asnumpy(gpu_render.render(host, ours.rgb, alpha, gpu.params))
        figures["psnr_vs_cpu_db"].append(psnr(ours.picture, cpu))
        figures["psnr_vs_numpy_db"].append(psnr(ours.picture, on_numpy))
        figures["matte_mean_abs_diff"].append(float(np.mean(np.abs(alpha - theirs.alpha))))
    return figures


def targets(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the figure it is judged on and whether it passes."""
    psnrs = [value for value in figures["agreement"]["psnr_vs_cpu_db"] if value is not None]
    values = {
        "images_per_s": max(run["images_per_s"] for run in figures["gpu"]["rates"]),
        "matting_ms": figures["gpu"]["stages_ms"]["matting"],
        "bokeh_ms": figures["gpu"]["stages_ms"]["bokeh"],
        "psnr_db": min(psnrs) if psnrs else math.inf,  # identical pictures everywhere
    }
    judged = {}
    for name, (sense, bound) in TARGETS.items():
        value = values[name]
        passed = value >= bound if sense == ">=" else value <= bound
        judged[name] = {"target": f"{sense} {bound:g}", "value": value, "pass": passed}
    return judged


def measure(args: argparse.Namespace, keep: Callable[[dict[str, Any], str], None]) -> None:
    """Measures every figure of the run into a dict that ``keep`` is given after each step, so
    that a run cut short leaves what it had measured."""
    photos = [photo(number, args.size) for number in range(args.images)]
    cores = os.cpu_count() or 1
    figures: dict[str, Any] = {"config": {**vars(args), "size": list(args.size)}}
    figures["config"].update(strength=STRENGTH, cpu_cores=cores, json=str(args.json))
    gpu, cpu = Pipeline(choose(args.backend), args.model), Pipeline(None, args.model)
    gpu_timer, gpu_out = stage_run(gpu, photos)
    figures["gpu"] = {"stages_ms": gpu_timer.medians(), "pool_peak_bytes": gpu_timer.pool_peak}
    keep(figures, "GPU stages")
    cpu_timer, cpu_out = stage_run(cpu, photos)
    figures["cpu"] = {"stages_ms": cpu_timer.medians()}
    keep(figures, "CPU stages")
    figures["agreement"] = agreement(gpu, gpu_out, cpu_out)
    keep(figures, "agreement")
    job = RateJob(args.backend, args.model, 0, tuple(photos), args.window)
    figures["gpu"]["rates"] = []
    for processes in args.processes:
        figures["gpu"]["rates"].append(images_per_second(job, processes))
        keep(figures, f"GPU images/s with {processes} processes")
    cpu_processes = max(1, cores // 2)
    threads = max(1, cores // cpu_processes)  # onnxruntime's, so processes share the cores
    cpu_job = RateJob("opencv", args.model, threads, tuple(photos), args.window)
    figures["cpu"]["rate"] = images_per_second(cpu_job, cpu_processes)
    best = max(run["images_per_s"] for run in figures["gpu"]["rates"])
    figures["ratios"] = {
        "images_per_s_gpu_over_cpu": best / figures["cpu"]["rate"]["images_per_s"],
        "stage_cpu_ms_over_gpu_ms": {
            name: cpu_ms / figures["gpu"]["stages_ms"][name]
            for name, cpu_ms in figures["cpu"]["stages_ms"].items()
        },
    }
    figures["targets"] = targets(figures)
    keep(figures, "CPU images/s, ratios, targets")


def report(figures: dict[str, Any]) -> None:
    """Prints the figures as tables."""
    config, gpu, cpu = figures["config"], figures["gpu"], figures["cpu"]
    width, height = config["size"]
    print(f"{config['backend']} vs CPU, {width}x{height}, {config['model']}, ", end="")
    print(f"strength {config['strength']}, {config['images']} photos, {config['cpu_cores']} cores")
    print(f"{'stage':10} {'GPU ms':>9} {'CPU ms':>9} {'CPU/GPU':>8}")
    for name, gpu_ms in gpu["stages_ms"].items():
        cpu_ms = cpu["stages_ms"].get(name)  # the CPU path has no upload or download
        cpu_shown = "-" if cpu_ms is None else f"{cpu_ms:.1f}"
        ratio = "-" if cpu_ms is None else f"{cpu_ms / gpu_ms:.1f}"
        print(f"{name:10} {gpu_ms:9.1f} {cpu_shown:>9} {ratio:>8}")
    print(f"GPU pool peak of the stage run: {gpu['pool_peak_bytes'] / 2**20:.0f} MiB")
    for run in [*gpu["rates"], cpu["rate"]]:
        where = "CPU" if run is cpu["rate"] else "GPU"
        print(f"{where} {run['processes']} processes: {run['images_per_s']:.2f} images/s")
        for one in run["per_process"]:
            smi = one["nvidia_smi_mib"]
            pool, peak = one["pool_bytes"] / 2**20, one["pool_peak_bytes"] / 2**20
            print(
                f"  pid {one['pid']}: {one['images']} images in {one['seconds']:.1f} s, "
                f"pool {pool:.0f} MiB (peak {peak:.0f}), nvidia-smi {smi or '-'} MiB"
            )
    print(f"images/s GPU/CPU: {figures['ratios']['images_per_s_gpu_over_cpu']:.1f}")
    for name, values in figures["agreement"].items():
        shown = ", ".join("identical" if value is None else f"{value:.4g}" for value in values)
        print(f"{name}: {shown}")
    for name, judged in figures["targets"].items():
        verdict = "pass" if judged["pass"] else "FAIL"
        print(f"target {name} {judged['target']}: {judged['value']:.2f} {verdict}")


def size(text: str) -> tuple[int, int]:
    """WxH → (W, H)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


def main() -> None:
    """Measure, print, and write the figures to --json."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=("cupy", "numpy"), default="cupy")
    parser.add_argument("--size", type=size, default=(4000, 3000), help="WxH of the photos")
    parser.add_argument("--images", type=int, default=4, help="distinct photos")
    parser.add_argument("--processes", type=lambda text: [int(p) for p in text.split(",")])
    parser.add_argument("--window", type=float, default=10.0, help="seconds counted per rate")
    parser.add_argument("--model", choices=MATTING_MODELS, default="fusion")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.set_defaults(processes=[1, 2, 4, 8])
    args = parser.parse_args()
    begin = time.perf_counter()
    kept: dict[str, Any] = {}

    def keep(figures: dict[str, Any], step: str) -> None:
        print(f"[{time.perf_counter() - begin:6.0f} s] {step}: measured", flush=True)
        kept.update(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))

    measure(args, keep)
    report(kept)


if __name__ == "__main__":
    main()
