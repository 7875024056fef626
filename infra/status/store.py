"""The status store: batch and image records in Redis; every state transition lives here.

The records, their keys and the state machine are drawn in ``infra.status``. Each transition is
a method named after the one legal move it makes (``start``, ``complete``, ``fail``, ``requeue``,
``reject``, ``cancel``, and ``retry`` from ``infra.status.retry``), run as one Lua script
(``infra.status.transitions``) that checks the current state and moves the batch counters in
the same step, so
``queued + running + done + failed + cancelled == total`` always holds, even when a message is
delivered twice. A transition that does not apply changes nothing and returns the state the image
is in. A delivery count per image turns an image that keeps killing its worker into a failure
after ``max_deliveries`` instead of an endless loop.

Making a batch (its records in steps, the lease on sending its messages) is in
``infra.status.creation``, expanding one in the background in ``infra.status.expansion``; this
store inherits both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import redis

from infra.status import transitions
from infra.status.creation import Arg, flat
from infra.status.expansion import BatchExpansion
from infra.status.keys import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    PHASE_KEYS,
    RUNNING_KEY,
    WEBHOOKS_DUE_KEY,
    batch_key,
    image_key,
    images_key,
    rate_key,
    submits_key,
    tenant_key,
    tenant_of,
)
from infra.status.metrics import METRICS_KEY, stage_increments
from infra.status.records import mapped_errors
from infra.status.retry import Retrying
from infra.status.window import RATE_BUCKET_S

CANCEL_CHUNK = 500
"""Image records cancelled per Lua call, so that Redis is never blocked for long."""
ERROR_CHARS = 2000
"""Longest error text kept on an image record."""


class Started(NamedTuple):
    """What ``StatusStore.start`` found: go ahead or not, and the batch it belongs to."""

    outcome: str
    deliveries: int
    batch_created: float  # the batch record's created_at (0 when none): which batch of that id


class StatusStore(BatchExpansion, Retrying):
    """Reads and writes batch and image records; the only place that changes their state."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int,
        max_deliveries: int,
        on_complete: Callable[[str], None] | None = None,
    ) -> None:
        # Any: redis-py's stubs cannot know that decode_responses makes every reply a str.
        self.redis: Any = client
        self.ttl = ttl
        self.max_deliveries = max_deliveries
        # Called with the batch id after the transition that finished a batch with a webhook.
        self.on_complete = on_complete
        self._scripts = {
            name: client.register_script(source) for name, source in transitions.SCRIPTS.items()
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: int,
        max_deliveries: int,
        on_complete: Callable[[str], None] | None = None,
    ) -> StatusStore:
        """A store on the Redis at url."""
        client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, ttl=ttl, max_deliveries=max_deliveries, on_complete=on_complete)

    def start(self, batch_id: str, image_id: str, worker: str) -> Started:
        """Move an image from queued to running; returns (outcome, deliveries, batch created).

        The outcome is ``running`` (go ahead, also for a redelivered running image),
        ``done``/``failed``/``cancelled`` (already final: skip it), ``cancelled`` also for a
        queued image of a cancelled batch (now final), ``poison`` (delivered too often: now
        failed) or ``missing`` (no such record).
        """
        outcome, deliveries, completed, created = self._image(
            "start", batch_id, image_id, self.max_deliveries, worker
        )
        self._completed(batch_id, completed)
        return Started(str(outcome), int(deliveries), float(created or 0))

    def complete(
        self,
        batch_id: str,
        image_id: str,
        *,
        timings: Mapping[str, float],
        output: str,
        confidence: float | None = None,
        review: bool = False,
    ) -> str:
        """Move a running image to done with its stage timings and output; its state now.

        ``confidence`` (0..1) is the matte's and ``review`` its low-confidence flag, which also
        counts the image in its batch's ``review``. The timings also go into the stage
        histograms (``infra.status.metrics``).
        """
        rounded = json.dumps({name: round(s, 4) for name, s in timings.items()})
        increments = [value for pair in stage_increments(timings) for value in pair]
        score = "" if confidence is None else f"{confidence:.3f}"
        flag = "1" if review and confidence is not None else "0"
        return self._move("complete", batch_id, image_id, rounded, output, score, flag, *increments)

    def fail(self, batch_id: str, image_id: str, error: str) -> str:
        """Move a running image to failed with the reason; returns the state it has now."""
        return self._move("fail", batch_id, image_id, error[:ERROR_CHARS])

    def requeue(self, batch_id: str, image_id: str, error: str, *, retries: int) -> str:
        """Move a running image back to queued (a transient failure, retried); its state now."""
        return self._move("requeue", batch_id, image_id, error[:ERROR_CHARS], retries)

    def reject(self, batch_id: str, image_id: str, error: str, *, worker: str) -> str:
        """Fail a queued or running image whose message breaks the contract; its state now."""
        return self._move("reject", batch_id, image_id, error[:ERROR_CHARS], worker)

    def set_stage(self, batch_id: str, image_id: str, stage: str) -> None:
        """Record which stage a running image is in (for live views)."""
        self._hset(image_key(batch_id, image_id), {"stage": stage})

    def _hset(self, key: str, fields: dict[str, str]) -> None:
        """Set fields of a record that exists; one that expired meanwhile is not brought back."""
        with mapped_errors():
            self._run("update", [key], flat(fields))

    def _move(self, script: str, batch_id: str, image_id: str, *args: Arg) -> str:
        state, completed = self._image(script, batch_id, image_id, *args)
        self._completed(batch_id, completed)
        return str(state)

    def _image(self, script: str, batch_id: str, image_id: str, *args: Arg) -> list[Any]:
        """Run an image transition with the calling convention of ``lua/common.lua``."""
        keys = [image_key(batch_id, image_id), batch_key(batch_id), images_key(batch_id)]
        keys += [rate_key(batch_id), EVENTS_KEY, METRICS_KEY, tenant_key(tenant_of(batch_id))]
        keys += [*PHASE_KEYS, WEBHOOKS_DUE_KEY, RUNNING_KEY]
        now = time.time()
        shared: list[Arg] = [now, self.ttl, EVENTS_MAXLEN, batch_id, image_id]
        shared.append(int(now // RATE_BUCKET_S))
        with mapped_errors():
            return list(self._run(script, keys, [*shared, *args]))

    def _completed(self, batch_id: str, completed: int) -> None:
        if completed and self.on_complete is not None:
            self.on_complete(batch_id)

    def cancel(self, batch_id: str) -> int | None:
        """Cancel a batch: its queued images become cancelled, running ones finish.

        Returns how many images this call cancelled, or None when there is no such batch. Images
        whose message is still on its way are refused by ``start`` (the batch's flag is set
        first), so nothing queued runs after this returns.
        """
        moved, start = 0, 0
        while True:
            with mapped_errors():
                ids = self.redis.lrange(images_key(batch_id), start, start + CANCEL_CHUNK - 1)
                keys = [batch_key(batch_id), images_key(batch_id), rate_key(batch_id)]
                keys += [EVENTS_KEY, METRICS_KEY, tenant_key(tenant_of(batch_id)), *PHASE_KEYS]
                keys += [WEBHOOKS_DUE_KEY, *(image_key(batch_id, image_id) for image_id in ids)]
                args = [time.time(), self.ttl, EVENTS_MAXLEN, batch_id, *ids]
                count, completed = self._run("cancel", keys, args)
            if count < 0:
                return None
            moved += int(count)
            self._completed(batch_id, completed)
            if len(ids) < CANCEL_CHUNK:
                return moved
            start += CANCEL_CHUNK

    def count_submit(self, tenant: str, now: float | None = None) -> int:
        """Count one submission of the tenant in the current minute; returns the minute's count."""
        key = submits_key(tenant, int((now or time.time()) // 60))
        with mapped_errors():
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 120)  # the minute is over by then
            count, _ = pipe.execute()
        return int(count)

    def webhook_attempted(self, batch_id: str, outcome: str, error: str = "") -> int:
        """Record a webhook attempt's outcome (retrying, delivered, failed); returns attempts.

        A retrying webhook stays due from now (its next attempt is on its way); a delivered or
        failed one is no longer due.
        """
        key = batch_key(batch_id)
        with mapped_errors():
            pipe = self.redis.pipeline()
            pipe.hincrby(key, "webhook_attempts", 1)
            pipe.hset(key, mapping={"webhook_status": outcome, "webhook_error": error[:500]})
            pipe.expire(key, self.ttl, nx=True)  # an expired batch comes back with the TTL
            pipe.hincrby(METRICS_KEY, f"webhooks:{outcome}", 1)  # blurq_webhook_attempts_total
            if outcome == "retrying":
                pipe.zadd(WEBHOOKS_DUE_KEY, {batch_id: time.time()})
            else:
                pipe.zrem(WEBHOOKS_DUE_KEY, batch_id)
            attempts, *_ = pipe.execute()
        return int(attempts)
