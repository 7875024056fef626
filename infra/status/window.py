"""The rate buckets of a batch as read back: how many images finished in its recent window.

Each transition that ends an image done, or failed after some work, adds one to the batch's
bucket of the current ``RATE_BUCKET_S`` seconds (``lua/common.lua``); a batch record is read with
the buckets of the last ``RATE_WINDOW_S`` seconds (``StatusReader.batches``), which
``infra.status.progress`` turns into a rate and an ETA.
"""

from __future__ import annotations

from dataclasses import dataclass

RATE_BUCKET_S = 10
"""Width of the buckets counting finished images per batch, in seconds."""
RATE_WINDOW_S = 60
"""The recent window a batch's rate is measured over, in seconds."""


def rate_buckets(now: float) -> tuple[list[str], float]:
    """The rate buckets of the recent window that ends at now, and when the first one starts.

    The window is ``RATE_WINDOW_S`` plus the part of the current bucket gone by.
    """
    current = int(now // RATE_BUCKET_S)
    first = current - RATE_WINDOW_S // RATE_BUCKET_S
    return [str(bucket) for bucket in range(first, current + 1)], first * RATE_BUCKET_S


@dataclass(frozen=True)
class RecentWindow:
    """How many images were counted in the rate from ``since`` until ``until``."""

    finished: int
    since: float
    until: float
