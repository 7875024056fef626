"""The maintenance sweep: repairs what a crash can strand, one sweep at a time across the fleet.

A worker-side timer, not Celery beat: every ``blurq worker`` and ``blurq expander`` process runs
``SweepStep``, a thread in its main process that every ``sweep_interval`` seconds takes a Redis
lock (``SET NX`` with a TTL, released only by its holder) and sweeps when it got it. Beat would be
one more process that must run exactly once (two beats send every schedule twice, none sends
nothing); the timer needs no deployment of its own, sweeps as long as any worker lives, and the
lock keeps sweeps from overlapping. Every repair reads an index the status transitions keep
(``infra.status``), never a scan of all batches:

- **Due webhooks** (``webhooks:due``): a batch's webhook still pending or retrying
  ``WEBHOOK_RESEND_S`` after it was last sent for (its sender died between the step that finished
  the batch and sending the task, or the task was lost) is sent again. Receivers drop repeats by
  ``X-Blurq-Delivery``: delivery is at least once.
- **Half-created batches** (``batches:creating``, ``batches:sending``): a creation nobody has
  touched for ``CLAIM_TTL_S`` is dropped, records and all; a batch whose sender stopped for
  ``SEND_LEASE_S`` has its lease taken over and its still-queued messages sent from where the
  sender stopped; an expansion (``batches:expanding``) that stopped is sent to an expander again,
  which goes on from where it stopped (``producer.expander``).
- **Lost messages** (``running``): an image running for longer than the visibility timeout whose
  message is in no queue and not unacknowledged (kombu's ``unacked`` hash) is moved back to queued
  and sent again; looked for twice, ``RECHECK_S`` apart, since a message is briefly in neither
  while a worker takes it. ``start`` counts the delivery: ``max_deliveries`` still bounds poison.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from celery import Celery, bootsteps

from infra.celery_app import EXPAND_QUEUE, EXPAND_TASK, WORKER_QUEUES, send_webhook
from infra.publish import Publisher, image_named, message_of, still_queued
from infra.settings import Settings
from infra.status import (
    CLAIM_TTL_S,
    CREATING_KEY,
    EXPANDING_KEY,
    RUNNING_KEY,
    SEND_LEASE_S,
    SENDING_KEY,
    WEBHOOKS_DUE_KEY,
    ImageState,
    StatusStore,
)

log = logging.getLogger(__name__)

LOCK_KEY = "blurq:sweep:lock"
WEBHOOK_RESEND_S = 300
"""A due webhook not sent for this long is sent again (an attempt and its backoff take < 90 s)."""
LOST_AFTER_S = 60
"""Beyond the visibility timeout, how long an image runs before its message is looked for."""
RECHECK_S = 2.0
"""Pause between the two looks for an image's message."""
SWEEP_LIMIT = 200
"""Entries of each index repaired per sweep, so that one sweep stays short."""
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
"""kombu's Redis transport keeps a queue's priority levels in lists with these suffixes."""


class Sweeper:
    """One sweep over the indexes; ``sweep_once`` runs it under the fleet-wide lock."""

    def __init__(
        self, settings: Settings, store: StatusStore, publisher: Publisher, app: Celery
    ) -> None:
        self.settings, self.store, self.publisher, self.app = settings, store, publisher, app

    def sweep_once(self) -> Counter[str] | None:
        """Sweep if no other process is sweeping; what was repaired, or None when locked out."""
        lock = self.store.redis.lock(LOCK_KEY, timeout=max(60, 4 * self.settings.sweep_interval))
        if not lock.acquire(blocking=False):
            return None
        try:
            return self.sweep()
        finally:
            lock.release()

    def sweep(self) -> Counter[str]:
        """Every repair once; counts of what each did."""
        done: Counter[str] = Counter()
        now = time.time()
        done["webhooks resent"] = self._webhooks(now)
        done["half-created dropped"] = self._creating(now)
        done["sending taken over"] = self._sending(now)
        done["expansions resent"] = self._expanding(now)
        done["lost messages resent"] = self._lost(now)
        if any(done.values()):
            log.warning("maintenance sweep repaired: %s", dict(+done))
        return done

    def _stale(self, key: str, before: float) -> list[str]:
        found: list[str] = self.store.redis.zrangebyscore(key, "-inf", before, 0, SWEEP_LIMIT)
        return found

    def _webhooks(self, now: float) -> int:
        stale = self._stale(WEBHOOKS_DUE_KEY, now - WEBHOOK_RESEND_S)
        for batch_id in stale:
            batch = self.store.batch(batch_id)
            if batch is None or batch.webhook_status not in ("pending", "retrying"):
                self.store.redis.zrem(WEBHOOKS_DUE_KEY, batch_id)
                continue
            self.store.redis.zadd(WEBHOOKS_DUE_KEY, {batch_id: now})
            send_webhook(self.app, batch_id)
        return len(stale)

    def _creating(self, now: float) -> int:
        stale = self._stale(CREATING_KEY, now - CLAIM_TTL_S)
        return sum(self.store.drop_half_created(batch_id, now - CLAIM_TTL_S) for batch_id in stale)

    def _sending(self, now: float) -> int:
        taken = 0
        for batch_id in self._stale(SENDING_KEY, now - SEND_LEASE_S):
            batch = self.store.batch(batch_id)
            if batch is None or batch.submitted:
                self.store.redis.zrem(SENDING_KEY, batch_id)
            elif self.store.claim_sending(batch_id):
                rest = still_queued(self.store, batch_id, batch.sent, batch.total)
                sent = self.publisher.publish(batch.queue, rest)
                log.warning("batch %s: its sender stopped; %d messages sent for it", batch_id, sent)
                self.store.mark_submitted(batch_id)
                taken += 1
            else:  # its sender is alive: look again when its lease could have lapsed
                self.store.redis.zadd(SENDING_KEY, {batch_id: now})
        return taken

    def _expanding(self, now: float) -> int:
        resent = 0
        for batch_id in self._stale(EXPANDING_KEY, now - SEND_LEASE_S):
            if self.store.expanding(batch_id) is None:  # expired, or ended meanwhile
                self.store.redis.zrem(EXPANDING_KEY, batch_id)
                continue
            self.store.redis.zadd(EXPANDING_KEY, {batch_id: now})  # the expander renews it
            self.app.send_task(EXPAND_TASK, args=[batch_id], queue=EXPAND_QUEUE)
            resent += 1
        return resent

    def _lost(self, now: float) -> int:
        before = now - self.settings.visibility_timeout - LOST_AFTER_S
        suspects = set(self._stale(RUNNING_KEY, before))
        if suspects:
            suspects -= self._in_flight()
        if suspects:
            time.sleep(RECHECK_S)
            suspects -= self._in_flight()
        for member in suspects:
            batch_id, _, image_id = member.rpartition(":")
            self._resend(batch_id, image_id, member)
        return len(suspects)

    def _resend(self, batch_id: str, image_id: str, member: str) -> None:
        image, batch = self.store.image(batch_id, image_id), self.store.batch(batch_id)
        if image is None or batch is None or image.state is not ImageState.RUNNING:
            self.store.redis.zrem(RUNNING_KEY, member)  # an index entry nothing backs
            return
        reason = "its message was lost; sent again by the maintenance sweep"
        if self.store.requeue(batch_id, image_id, reason, retries=image.retries) == "queued":
            self.publisher.publish(batch.queue, [message_of(batch_id, image_id, image.input)])
            log.warning("image %s/%s: %s", batch_id, image_id, reason)

    def _in_flight(self) -> set[str]:
        """``<batch id>:<image id>`` of every message in a worker queue or unacknowledged."""
        broker: Any = self.publisher.redis
        found = {image_named(raw, unacked=True) for raw in broker.hvals("unacked")}
        for queue in WORKER_QUEUES:
            for suffix in PRIORITY_SUFFIXES:
                position = 0
                while chunk := broker.lrange(queue + suffix, position, position + 999):
                    found |= {image_named(raw) for raw in chunk}
                    position += len(chunk)
        found.discard(None)
        return {str(name) for name in found}


class SweepStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs the sweep every ``sweep_interval`` seconds on a thread of the worker's main process."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        """Start the timer thread (a daemon: it never holds up the worker's exit)."""
        self.thread = threading.Thread(target=self.run, name="blurq-sweep", daemon=True)
        self.thread.start()

    def stop(self, parent: Any) -> None:
        """Ask the thread to stop after the sweep it may be in."""
        self.stopping.set()

    def run(self) -> None:
        """The timer: a sweep, then a wait, until stopped; a failed sweep is logged, not fatal."""
        from infra.celery_app import app
        from infra.settings import get_settings

        settings = get_settings()
        store = StatusStore.from_url(
            settings.redis_url, ttl=settings.status_ttl, max_deliveries=settings.max_deliveries
        )
        sweeper = Sweeper(settings, store, Publisher.from_url(settings.broker), app)
        while not self.stopping.wait(settings.sweep_interval):
            try:
                sweeper.sweep_once()
            except Exception:
                log.exception("maintenance sweep failed; trying again next time")


def install(app: Celery) -> None:
    """Add the sweep to the workers app starts (``blurq worker``, ``blurq expander``)."""
    app.steps["worker"].add(SweepStep)
