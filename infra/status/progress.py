"""A batch's state, throughput and time left: the one definition that the CLI, the API and so
the dashboard show.

``rate`` counts images that were processed, done or failed, per second:

- before any image started: 0;
- while the batch runs: those finished in the recent window (the last ``RATE_WINDOW_S``, plus
  the current 10 s bucket so far, cut to the batch's start for a younger batch) over the
  window's length, read with the batch record (``BatchStatus.recent``), so the figure follows
  a fleet that grows or shrinks;
- once every image is final: the batch's average, ``(done + failed) / (finished_at -
  started_at)``, so a finished batch keeps one figure instead of decaying to 0.

Cancelled images took no time: they are not in the rate, and not in what is left.
``eta_seconds`` is what is left (``queued + running``) over the rate, None when the batch has
finished or nothing has finished yet (no rate to divide by). Windows and spans shorter than 1 s
count as 1 s, so a first burst does not read as thousands of images a second.
"""

from __future__ import annotations

import time

from infra.status.records import BatchStatus


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
    """Images processed (done or failed) per second: recent while running, average once over.

    ``now`` is read only for a record built by hand (no ``recent`` window): its average so far.
    """
    if batch.started_at is None:
        return 0.0
    if batch.finished_at is not None:
        return (batch.done + batch.failed) / max(batch.finished_at - batch.started_at, 1.0)
    if batch.recent is None:
        until = time.time() if now is None else now
        return (batch.done + batch.failed) / max(until - batch.started_at, 1.0)
    since = max(batch.recent.since, batch.started_at)
    return batch.recent.finished / max(batch.recent.until - since, 1.0)


def eta_seconds(batch: BatchStatus, *, now: float | None = None) -> float | None:
    """Seconds until every image is final at the current rate; None when over or unknown."""
    speed = rate(batch, now=now)
    if batch.finished or speed <= 0:
        return None
    return (batch.queued + batch.running) / speed
