"""A one-line live progress bar for a batch, redrawn in place until the batch ends.

The same line in both modes of the CLI: from the batch record (direct) or from the HTTP API's
answer (``--api``), whose rate and ETA are the server's (``Pace``), computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from infra.status import BatchStatus, progress

WIDTH = 30


@dataclass(frozen=True)
class Pace:
    """Images processed per second, seconds left (None: finished or not known yet), and whether
    too few images or seconds back the rate yet (then no ETA is given)."""

    rate: float
    eta: float | None
    estimating: bool = False

    @classmethod
    def of(cls, status: BatchStatus, *, now: float | None = None) -> Pace:
        """The pace of a batch record (``infra.status.progress``, as the API computes it)."""
        return cls(
            progress.rate(status, now=now),
            progress.eta_seconds(status, now=now),
            progress.estimating(status, now=now),
        )


Shown = tuple[BatchStatus, Pace]
"""What the bar shows: a batch's counts and its pace."""


def shown(status: BatchStatus) -> Shown:
    """A batch record with its pace computed here (the direct mode)."""
    return status, Pace.of(status)


def render(status: BatchStatus, *, now: float | None = None, pace: Pace | None = None) -> str:
    """One line: bar, counts per state, throughput and ETA (pace: computed from status); while
    the batch's inputs are still being listed, how many were found instead of the bar; the
    reason of a batch that failed whole.
    """
    finished = status.done + status.failed + status.cancelled
    filled = int(WIDTH * finished / status.total) if status.total else WIDTH
    bar = "#" * filled + "-" * (WIDTH - filled)
    if status.expanding:
        bar = f"{'listing inputs':^{WIDTH}}"
    line = (
        f"[{bar}] {finished}/{status.total}  done {status.done}  failed {status.failed}  "
        f"running {status.running}  queued {status.queued}"
    )
    if status.expanding:
        line += f"  expanding: {status.total} found so far"
    if status.error:
        line += f"  batch failed: {status.error}"
    if status.cancel_requested:
        line += f"  cancelled {status.cancelled}"
    if status.review:
        line += f"  review {status.review}"
    elapsed = _elapsed(status, now or time.time())
    pace = pace or Pace.of(status, now=now)
    if pace.estimating:
        line += "  estimating"
    elif pace.rate > 0:
        line += f"  {pace.rate:.2f} img/s"
    if pace.eta is not None:
        line += f"  ETA {_duration(pace.eta)}"
    if status.finished and elapsed is not None:
        line += f"  in {_duration(elapsed)}"
    return line


def follow(
    read: Callable[[], Shown], out: TextIO, *, poll: float = 0.5, timeout: float | None = None
) -> BatchStatus:
    """Redraw the bar until the batch ends (or timeout); returns the last status.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) a line is written only when
    the counts change.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    live = out.isatty()
    last = None
    while True:
        status, pace = read()
        counts = (status.queued, status.running, status.done, status.failed, status.expanding)
        if live:
            out.write("\r" + render(status, pace=pace) + "\033[K")
        elif counts != last:
            out.write(render(status, pace=pace) + "\n")
        last = counts
        out.flush()
        if status.finished or (deadline is not None and time.monotonic() > deadline):
            if live:
                out.write("\n")
            return status
        time.sleep(poll)


def _elapsed(status: BatchStatus, now: float) -> float | None:
    if status.started_at is None:
        return None
    return (status.finished_at or now) - status.created_at


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
