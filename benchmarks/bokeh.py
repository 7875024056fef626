"""Time workers.bokeh.render_bokeh on a 12 MP photo against a naive full-resolution Gaussian blur.

Run from the repository root::

    .venv/bin/python benchmarks/bokeh.py            # 4000 x 3000, strengths 5..100, 3 repeats
    .venv/bin/python benchmarks/bokeh.py --night    # 400 point lights on a dark scene
    git worktree add -f --detach /tmp/old <commit>   # then, both revisions in one process:
    .venv/bin/python benchmarks/bokeh.py --against /tmp/old --repeats 7

The photo is scikit-image's astronaut, cropped to 4:3 and upscaled, when scikit-image is
importable, else a procedural scene; either way with a few clipped point lights and a soft
elliptical subject matte. ``--night`` darkens it to a sixth and scatters 400 clipped lights of
1 to 9 px across it, each drawn as its own disc: the point-light path's heaviest common case.
The naive baseline blurs the whole sRGB image with cv2.GaussianBlur at sigma = R_inf / 2 (the
standard deviation of a disc of radius R_inf) and composites it under alpha: what the bokeh
renderer replaces. ``--against`` alternates this checkout's renderer with another's, call by call,
and keeps the fastest run of each (wall and CPU time): on a busy machine, where whole runs one
after the other differ by 2x, the fairest comparison of two revisions.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from workers.bokeh import render_bokeh

STRENGTHS = (5, 15, 30, 60, 100)
TARGET_MS_PER_MP = 80.0
TARGET_SPREAD = 2.0


def make_photo(width: int, height: int, synthetic: bool, night: bool = False) -> NDArray[np.uint8]:
    """Return a photo-like RGB image: the astronaut if available, else procedural texture."""
    rng = np.random.default_rng(7)
    photo = None
    if not synthetic:
        try:
            from skimage import data

            src = data.astronaut()  # type: ignore[no-untyped-call]
            crop = src[64 : 64 + 384, :512]
            photo = cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC)
        except ImportError:
            photo = None
    if photo is None:
        coarse = rng.integers(0, 256, (height // 50 + 2, width // 50 + 2, 3), dtype=np.uint8)
        fine = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
        smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        photo = cv2.addWeighted(smooth, 0.85, fine, 1.0, 0.0)
    for _ in range(60):  # clipped point lights, the case lens blur exists for
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height // 2))
        cv2.circle(photo, (x, y), int(rng.integers(2, 8)), (255, 255, 255), -1)
    if night:
        photo = photo // 6
        for _ in range(400):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            colour = (255, int(rng.integers(150, 256)), int(rng.integers(60, 256)))
            cv2.circle(photo, (x, y), int(rng.integers(0, 5)), colour, -1)
    return np.asarray(photo, dtype=np.uint8)


def make_matte(width: int, height: int) -> NDArray[np.float32]:
    """Return a soft-edged elliptical subject matte covering about a fifth of the frame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot((xx - 0.42 * width) / (0.22 * width), (yy - 0.6 * height) / (0.45 * height))
    edge = 6.0 / (0.22 * width)  # a 6-pixel soft edge, like hair
    return np.asarray(np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0), dtype=np.float32)


def naive_blur(
    rgb: NDArray[np.uint8], alpha: NDArray[np.float32], strength: float
) -> NDArray[np.uint8]:
    """Blur everything with a Gaussian of matching spread and composite in sRGB."""
    r_inf = strength / 100 * 0.045 * max(rgb.shape[:2])
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigmaX=r_inf / 2)
    a = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)
    out = a * rgb.astype(np.float32) + (1.0 - a) * blurred.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Return the median wall time of fn in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def real_matte(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """The pipeline's own matte and foreground of the photo (needs the model weights)."""
    from infra.models import ModelStore
    from infra.settings import Settings
    from workers.matting import Matting, estimate_foreground

    alpha = Matting("fusion", ModelStore(Settings().model_dir)).predict(rgb)
    return alpha, estimate_foreground(rgb, alpha)


def other_render(checkout: str) -> Callable[..., NDArray[np.uint8]]:
    """``render_bokeh`` of another checkout (an older revision in a git worktree), imported beside
    this one's: with its own ``workers`` and ``infra`` modules, this one's left as they were."""
    packages = ("workers", "infra")
    ours = {
        name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in packages
    }
    sys.path.insert(0, checkout)
    try:
        render: Callable[..., NDArray[np.uint8]] = importlib.import_module(
            "workers.bokeh"
        ).render_bokeh
    finally:
        sys.path.remove(checkout)
        for name in [name for name in sys.modules if name.split(".")[0] in packages]:
            del sys.modules[name]
        sys.modules.update(ours)
    return render


def compare(
    theirs: Callable[..., NDArray[np.uint8]],
    case: tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.uint8] | None],
    strengths: list[int],
    repeats: int,
) -> None:
    """Time this checkout's render and theirs, alternated; print the fastest of each, per MP."""
    rgb, alpha, front = case
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    print(
        f"{'strength':>8} {'wall: ours':>11} {'theirs':>7} {'ratio':>6} {'cpu: ours':>10} "
        f"{'theirs':>7} {'ratio':>6}   (ms/MP, fastest of {repeats} alternated runs)"
    )
    for s in strengths:
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "theirs": []}
        for _ in range(repeats + 1):  # the first of each is a warm-up
            for name, render in (("ours", render_bokeh), ("theirs", theirs)):
                wall, cpu = time.perf_counter(), time.process_time()
                render(rgb, alpha, strength=s, foreground=front)
                took = (time.perf_counter() - wall, time.process_time() - cpu)
                runs[name].append((took[0] * 1000 / mp, took[1] * 1000 / mp))
        (ow, oc), (tw, tc) = (
            (min(r[0] for r in runs[n][1:]), min(r[1] for r in runs[n][1:])) for n in runs
        )
        print(
            f"{s:>8} {ow:>11.1f} {tw:>7.1f} {ow / tw:>6.2f} {oc:>10.1f} {tc:>7.1f} {oc / tc:>6.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print ms per megapixel; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per case (median; --against: fastest)"
    )
    parser.add_argument("--strengths", type=int, nargs="+", default=list(STRENGTHS))
    parser.add_argument("--synthetic", action="store_true", help="procedural image, no skimage")
    parser.add_argument("--night", action="store_true", help="dark, with 400 point lights")
    parser.add_argument("--no-naive", action="store_true", help="skip the Gaussian baseline")
    parser.add_argument(
        "--against", metavar="CHECKOUT", help="alternate with another checkout's renderer"
    )
    parser.add_argument(
        "--real-matte",
        action="store_true",
        help="the pipeline's matte (fusion model) and estimated foreground instead of an ellipse",
    )
    args = parser.parse_args(argv)

    rgb = make_photo(args.width, args.height, args.synthetic, args.night)
    alpha = make_matte(args.width, args.height)
    front = None
    if args.real_matte:
        alpha, front = real_matte(rgb)
    if args.against:
        compare(other_render(args.against), (rgb, alpha, front), args.strengths, args.repeats)
        return 0
    mp = args.width * args.height / 1e6
    print(f"image {args.width}x{args.height} ({mp:.1f} MP), median of {args.repeats}")
    print(
        f"{'strength':>8} {'R_inf px':>8} {'ours ms/MP':>11} {'naive ms/MP':>12} {'ours/naive':>11}"
    )
    ours = {}
    for s in args.strengths:
        render = partial(render_bokeh, rgb, alpha, strength=s, foreground=front)
        ours[s] = median_ms(render, args.repeats) / mp
        r_inf = s / 100 * 0.045 * max(args.width, args.height)
        if args.no_naive:
            print(f"{s:>8} {r_inf:>8.1f} {ours[s]:>11.1f} {'-':>12} {'-':>11}")
            continue
        naive = median_ms(partial(naive_blur, rgb, alpha, s), args.repeats) / mp
        print(f"{s:>8} {r_inf:>8.1f} {ours[s]:>11.1f} {naive:>12.1f} {ours[s] / naive:>11.2f}")
    spread = max(ours.values()) / min(ours.values())
    worst = max(ours.values())
    print(f"slowest/fastest strength: {spread:.2f} (target <= {TARGET_SPREAD})")
    print(f"worst ms/MP: {worst:.1f} (target <= {TARGET_MS_PER_MP})")
    return 0 if worst <= TARGET_MS_PER_MP and spread <= TARGET_SPREAD else 1


if __name__ == "__main__":
    sys.exit(main())
