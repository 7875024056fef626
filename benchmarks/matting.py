"""Matting time on 12 MP and 24 MP photos, beside ISNet's bare inference at 1024² (the baseline).

Two 12 MP photos: the astronaut (short edges) and the cat from skimage (fur all round, about a
quarter of the working image in the closed-form solve's unknown band: the costly case). "doubt"
is the astronaut's alpha with her suit (a box in the lower left, where α > 0.5) set to 0.4: a wide
region of mid alpha that the refinement decides from colour (doubt.py) before its solve.

    .venv/bin/python benchmarks/matting.py --repeats 3

The same script measures an older checkout when run with that checkout on PYTHONPATH (from a
folder outside this repository, so that its modules are the ones imported).

Prints the median seconds of each and the ratio to the baseline, all measured in one run,
in interleaved rounds.
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
from infra.params import MATTING_MODELS
from infra.settings import Settings
from workers.matting.models import Matting, isnet_alpha
from workers.matting.refine import refine
from workers.matting.sessions import get_session
from workers.matting.upsample import refine_upsample


def median_seconds(works: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each work over repeats rounds, after one warm-up run each."""
    # Interleaved rounds, so that load from other processes falls on every row alike.
    times: dict[str, list[float]] = {name: [] for name in works}
    for round_ in range(repeats + 1):
        for name, work in works.items():
            begin = time.perf_counter()
            work()
            if round_:
                times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    photo, large = _photo(data.astronaut(), 4000, 3000), _photo(data.astronaut(), 6000, 4000)
    fur = _photo(data.chelsea(), 4000, 3000)
    store = ModelStore(Settings().model_dir)
    session = get_session("isnet", store)
    fusion = Matting("fusion", store)
    works: dict[str, Callable[[], object]] = {
        "isnet inference only (baseline)": lambda: isnet_alpha(session, photo),
        # The previous default: the fused alpha upsampled, without the closed-form solve.
        "fusion, guided upsampling only": lambda: refine_upsample(
            fusion.predict_lowres(photo), photo
        ),
    }
    for model in MATTING_MODELS:
        matting = Matting(model, store)
        works[f"{model} predict, 12 MP"] = lambda m=matting: m.predict(photo)
    works["fusion predict, 12 MP fur"] = lambda: fusion.predict(fur)
    fur_lowres = fusion.predict_lowres(fur)
    works["fusion refinement only, 12 MP fur"] = lambda: refine(fur_lowres, fur)
    doubt = fusion.predict_lowres(photo)
    side = doubt.shape[0]
    suit = doubt[int(0.6 * side) : int(0.95 * side), int(0.05 * side) : int(0.45 * side)]
    suit[suit > 0.5] = 0.4
    works["fusion refinement only, 12 MP doubt"] = lambda: refine(doubt, photo)
    works["fusion predict, 24 MP"] = lambda: fusion.predict(large)
    seconds = median_seconds(works, args.repeats)
    baseline = seconds["isnet inference only (baseline)"]
    print(f"{'what':36} {'median s':>9} {'x baseline':>11}")
    for name, value in seconds.items():
        print(f"{name:36} {value:9.3f} {value / baseline:11.2f}")


def _photo(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """A sample photo enlarged to width × height, contiguous RGB."""
    enlarged = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(enlarged, np.uint8)


if __name__ == "__main__":
    main()
