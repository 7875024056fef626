"""A one-line live progress bar for a batch, redrawn in place until the batch ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from infra.status import BatchStatus, progress

WIDTH = 30


def render(status: BatchStatus, *, now: float | None = None) -> str:
    """One line: bar, counts per state, throughput and ETA; while the batch's inputs are still
    being listed, how many were found instead of the bar; the reason of a batch that failed whole.
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
    elapsed = _elapsed(status, now or time.time())
    # The same figures as the API's (infra.status.progress).
    speed, eta = progress.rate(status, now=now), progress.eta_seconds(status, now=now)
    if speed > 0:
        line += f"  {speed:.2f} img/s"
    if eta is not None:
        line += f"  ETA {_duration(eta)}"
    if status.finished and elapsed is not None:
        line += f"  in {_duration(elapsed)}"
    return line


def follow(
    read: Callable[[], BatchStatus], out: TextIO, *, poll: float = 0.5, timeout: float | None = None
) -> BatchStatus:
    """Redraw the bar until the batch ends (or timeout); returns the last status.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) a line is written only when
    the counts change.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    live = out.isatty()
    last = None
    while True:
        status = read()
        counts = (status.queued, status.running, status.done, status.failed, status.expanding)
        if live:
            out.write("\r" + render(status) + "\033[K")
        elif counts != last:
            out.write(render(status) + "\n")
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
