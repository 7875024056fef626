"""Which workers are online and busy, from their Celery heartbeats, watched in the background.

Every worker announces itself on the broker's event channel every couple of seconds
(``worker-heartbeat``: its active task count, tasks processed so far, the interval), when it
starts (``worker-online``) and when it stops (``worker-offline``). ``FleetWatch`` listens to those
worker events only (routing key ``worker.#``: no task events reach it) in one daemon thread per
API process and keeps the last one of each worker in memory, so a fleet view costs a dictionary
copy, never a broadcast to the workers; the one broadcast is Celery's wake-up when the watch
connects, so that every worker answers at once instead of at its next beat. A worker is online
while its last beat is younger than ``MISSED_BEATS`` intervals, by this process's clock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery

MISSED_BEATS = 3
"""Heartbeat intervals without one after which a worker counts as offline."""
FORGET_S = 600.0
"""Seconds after its last event that a worker that went away is no longer listed."""
RECONNECT_S = 2.0
"""Wait before listening again after the broker connection failed."""
STOP_CHECK_S = 0.25
"""How often a quiet watch looks whether it should stop (the app's shutdown waits for it)."""
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSeen:
    """A worker as its last event showed it."""

    name: str
    online: bool
    active: int  # tasks it was running at its last beat
    processed: int  # tasks it has run since it started
    last_heartbeat: float  # when its last event arrived here (unix seconds)
    interval: float  # seconds between its beats


class FleetWatch:
    """Keeps the latest heartbeat of every worker, listening in a background thread."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.listening = False  # connected to the broker's event channel right now
        self._seen: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._listen, name="fleet-watch", daemon=True)

    def start(self) -> FleetWatch:
        """Start listening (once); returns self."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; returns within about STOP_CHECK_S."""
        self._stop.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def workers(self, now: float | None = None) -> list[WorkerSeen]:
        """Every worker heard from lately, by name."""
        now = time.time() if now is None else now
        with self._lock:
            for name in [n for n, e in self._seen.items() if now - e["at"] > FORGET_S]:
                del self._seen[name]
            events = sorted(self._seen.items())
        return [_worker(name, event, now) for name, event in events]

    def _listen(self) -> None:
        """The thread: consume worker events until stopped, reconnecting after failures."""
        handlers = {kind: self._heard for kind in ("worker-heartbeat", "worker-online")}
        handlers["worker-offline"] = self._gone
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read() as connection:
                    receiver = self.app.events.Receiver(
                        connection, handlers=handlers, routing_key="worker.#"
                    )
                    receiver.connect_max_retries = 1  # this loop retries, and can be stopped
                    self._receiver = receiver
                    self.listening = True
                    receiver.should_stop = self._stop.is_set()
                    # Checks should_stop between events and every STOP_CHECK_S without one.
                    for _ in receiver.consume(safety_interval=STOP_CHECK_S, wakeup=True):
                        pass
            except Exception as error:  # the broker went away: listen again once it is back
                log.warning("fleet watch lost the broker, listening again: %s", error)
            self.listening = False
            self._stop.wait(RECONNECT_S)

    def _heard(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._seen[event["hostname"]] = {**event, "at": event["local_received"]}

    def _gone(self, event: dict[str, Any]) -> None:
        with self._lock:
            last = self._seen.get(event["hostname"], {})  # keeps its processed count
            self._seen[event["hostname"]] = {**last, "at": event["local_received"], "off": 1}


def _worker(name: str, event: dict[str, Any], now: float) -> WorkerSeen:
    interval = float(event.get("freq") or 2.0)
    online = "off" not in event and now - event["at"] <= MISSED_BEATS * interval
    return WorkerSeen(
        name=name,
        online=online,
        active=int(event.get("active") or 0) if online else 0,
        processed=int(event.get("processed") or 0),
        last_heartbeat=float(event["at"]),
        interval=interval,
    )
