"""Matting time on a 12 MP photo per model, beside ISNet's bare inference at 1024² (the baseline).

    .venv/bin/python benchmarks/matting.py --repeats 3

Prints the median seconds of each and the ratio to the baseline, all measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data

from infra.models import ModelStore
from infra.settings import Settings
from workers.matting import MATTING_MODELS, Matting, isnet_alpha
from workers.sessions import get_session


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of repeats runs, after one warm-up run."""
    work()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    photo = cv2.resize(data.astronaut(), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    store = ModelStore(Settings().model_dir)
    session = get_session("isnet", store)
    baseline = median_seconds(lambda: isnet_alpha(session, photo), args.repeats)
    print(f"{'what':34} {'median s':>9} {'x baseline':>11}")
    print(f"{'isnet inference only (baseline)':34} {baseline:9.3f} {1.0:11.2f}")
    for model in MATTING_MODELS:
        matting = Matting(model, store)
        seconds = median_seconds(
            lambda m=matting: m.predict(np.ascontiguousarray(photo)), args.repeats
        )
        print(f"{model + ' predict, 12 MP':34} {seconds:9.3f} {seconds / baseline:11.2f}")


if __name__ == "__main__":
    main()
