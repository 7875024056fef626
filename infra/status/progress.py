"""A batch's state, throughput and time left: the one definition that the CLI, the API and so
the dashboard show.

``rate`` counts processed images per second: done ones, and failed ones that took a worker at
least a second (a failure that comes at once, a missing key or a file that is not an image,
says nothing about the pace of the rest; ``lua/common.lua`` leaves it out of the buckets):

- before any image started: 0;
- while the batch runs: those counted in the recent window (the last ``RATE_WINDOW_S``, plus
  the current 10 s bucket so far) over the window's length, read with the batch record
  (``BatchStatus.recent``), so the figure follows a fleet that grows or shrinks. The window
  starts no earlier than the batch's first processed image (``warm_at``), and that image is
  not counted: the time before it is a cold worker loading its model, not the batch's pace;
- once every image is final: the batch's average, ``(done + failed) / (finished_at -
  started_at)``, so a finished batch keeps one figure instead of decaying to 0.

Cancelled images took no time: they are not in the rate, and not in what is left. While fewer
than ``MIN_SAMPLES`` images or ``MIN_SPAN_S`` seconds back the figure, the batch is
``estimating``: it has no ETA yet. ``eta_seconds`` is what is left (``queued + running``) over the
rate, None when the batch has finished, is estimating, or nothing was processed lately. Windows
and spans shorter than 1 s count as 1 s, so a first burst does not read as thousands of images a
second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from infra.status.records import BatchStatus

MIN_SAMPLES = 4
"""Images counted after the first before a running batch's rate gives an ETA."""
MIN_SPAN_S = 10.0
"""Seconds of measurement before a running batch's rate gives an ETA."""


@dataclass(frozen=True)
class _Sample:
    """What a running batch's rate is measured from: images counted over seconds."""

    images: int
    seconds: float


def state(batch: BatchStatus) -> str:
    """What a batch is doing, in one word: expanding (its inputs still being listed), failed (as
    a whole: ``error``), cancelled, finished, running or queued."""
    if batch.expanding:
        return "expanding"
    if batch.error:
        return "failed"
    if batch.cancel_requested:
        return "cancelled"
    if batch.finished:
        return "finished"
    return "running" if batch.started_at is not None else "queued"


def rate(batch: BatchStatus, *, now: float | None = None) -> float:
    """Images processed per second: recent while running, average once over.

    ``now`` is read only for a record built by hand (no ``recent`` window): its average so far.
    """
    if batch.started_at is None:
        return 0.0
    if batch.finished_at is not None:
        return (batch.done + batch.failed) / max(batch.finished_at - batch.started_at, 1.0)
    sample = _sample(batch, now)
    return sample.images / max(sample.seconds, 1.0)


def estimating(batch: BatchStatus, *, now: float | None = None) -> bool:
    """True while a running batch's rate rests on too few images or seconds for an ETA."""
    if batch.finished or batch.started_at is None:
        return False
    sample = _sample(batch, now)
    return sample.images < MIN_SAMPLES or sample.seconds < MIN_SPAN_S


def eta_seconds(batch: BatchStatus, *, now: float | None = None) -> float | None:
    """Seconds until every image is final at the current rate; None when over or unknown."""
    speed = rate(batch, now=now)
    if batch.finished or speed <= 0 or estimating(batch, now=now):
        return None
    return (batch.queued + batch.running) / speed


def _sample(batch: BatchStatus, now: float | None) -> _Sample:
    """The images and seconds behind a running batch's rate (see the module's docstring)."""
    assert batch.started_at is not None
    if batch.recent is None:
        until = time.time() if now is None else now
        return _Sample(batch.done + batch.failed, until - batch.started_at)
    since = max(batch.recent.since, batch.warm_at or batch.started_at)
    first = batch.warm_at is not None and batch.warm_at >= batch.recent.since
    images = max(batch.recent.finished - int(first), 0)
    return _Sample(images, batch.recent.until - since)
