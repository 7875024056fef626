"""Metric totals kept in Redis, so that any API replica can expose the same figures.

One hash, ``blurq:metrics``, written in the same Lua step as the image transitions
(``infra.status.transitions``) and read on each Prometheus scrape (``producer.http.metrics``)::

    images:done | images:failed | images:cancelled   images that reached each final state
    stage:<stage>:le:<bound>                          images whose <stage> took <= bound s
                                                      (and more than the next lower bound)
    stage:<stage>:sum | stage:<stage>:count           seconds and images per stage
    minute:<slot> | done:<slot> | failed:<slot>       images per minute over the last hour
                                                      (a ring of 60 slots: ``throughput``)

The hash has no TTL: it is a few hundred small counters that only ever grow (the ring's slots
are reused).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

METRICS_KEY = "blurq:metrics"
STAGES = ("get", "decode", "matting", "foreground", "bokeh", "encode", "put")
"""The pipeline's stages, in order (the names ``workers.pipeline`` times)."""
STAGE_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    math.inf,
)
"""Upper bounds of the stage timing histogram buckets, in seconds (+Inf last)."""


def bound_label(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``0.25``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def stage_increments(timings: Mapping[str, float]) -> list[tuple[str, float]]:
    """The (field, increment) pairs that record one image's stage timings."""
    pairs: list[tuple[str, float]] = []
    for stage, seconds in timings.items():
        bound = next(b for b in STAGE_BUCKETS if seconds <= b)
        pairs += [
            (f"stage:{stage}:le:{bound_label(bound)}", 1.0),
            (f"stage:{stage}:sum", round(seconds, 6)),
            (f"stage:{stage}:count", 1.0),
        ]
    return pairs


@dataclass(frozen=True)
class StageHistogram:
    """One stage's timings: cumulative bucket counts (as Prometheus wants them), sum and count."""

    stage: str
    buckets: list[tuple[str, float]]
    total_seconds: float
    count: float


def stage_histograms(raw: Mapping[str, str]) -> list[StageHistogram]:
    """The histogram of every stage from the metrics hash (stages never seen count zero)."""
    found = []
    for stage in STAGES:
        running = 0.0
        buckets = []
        for bound in STAGE_BUCKETS:
            running += float(raw.get(f"stage:{stage}:le:{bound_label(bound)}", 0))
            buckets.append((bound_label(bound), running))
        total = float(raw.get(f"stage:{stage}:sum", 0))
        found.append(
            StageHistogram(stage, buckets, total, float(raw.get(f"stage:{stage}:count", 0)))
        )
    return found
