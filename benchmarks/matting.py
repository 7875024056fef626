"""Matting time on 12 MP and 24 MP photos, beside ISNet's bare inference at 1024² (the baseline).

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
from numpy.typing import NDArray
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
    photo = _photo(4000, 3000)
    store = ModelStore(Settings().model_dir)
    session = get_session("isnet", store)
    baseline = median_seconds(lambda: isnet_alpha(session, photo), args.repeats)
    print(f"{'what':34} {'median s':>9} {'x baseline':>11}")
    print(f"{'isnet inference only (baseline)':34} {baseline:9.3f} {1.0:11.2f}")
    for model in MATTING_MODELS:
        matting = Matting(model, store)
        seconds = median_seconds(lambda m=matting: m.predict(photo), args.repeats)
        print(f"{model + ' predict, 12 MP':34} {seconds:9.3f} {seconds / baseline:11.2f}")
    large = _photo(6000, 4000)
    matting = Matting("fusion", store)
    seconds = median_seconds(lambda: matting.predict(large), args.repeats)
    print(f"{'fusion predict, 24 MP':34} {seconds:9.3f} {seconds / baseline:11.2f}")


def _photo(width: int, height: int) -> NDArray[np.uint8]:
    """The astronaut portrait enlarged to width × height, contiguous RGB."""
    enlarged = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(enlarged, np.uint8)


if __name__ == "__main__":
    main()
