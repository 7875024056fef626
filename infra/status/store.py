"""The status store: batch and image records in Redis; every state transition lives here.

The records and their keys are drawn in ``infra.status``. An image moves
``queued -> running -> done | failed``, or ``running -> queued`` when a transient failure is
retried, or ``queued -> cancelled`` once its batch is cancelled (images already running finish).
Each transition is one Lua script (``infra.status.transitions``) that checks the current state
and moves the batch counters in the same step, so
``queued + running + done + failed + cancelled == total`` always holds, even when a message is
delivered twice. A delivery count per image turns an image that keeps killing its worker into a
failure after ``max_deliveries`` instead of an endless loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis

from infra.status import transitions
from infra.status.metrics import METRICS_KEY, stage_increments
from infra.status.records import (
    BATCHES_KEY,
    CREATE_CHUNK,
    EVENTS_KEY,
    RATE_BUCKET_S,
    ImageState,
    StatusReader,
    batch_key,
    image_key,
    mapped_errors,
)

EVENTS_MAXLEN = 100_000
"""Entries kept in the events stream; older ones are trimmed (approximately)."""
CANCEL_CHUNK = 500
"""Image records cancelled per Lua call, so that Redis is never blocked for long."""


class StatusStore(StatusReader):
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
        self._start = client.register_script(transitions.START)
        self._finish = client.register_script(transitions.FINISH)
        self._cancel = client.register_script(transitions.CANCEL)

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

    def create_batch(
        self, batch_id: str, images: Iterable[tuple[str, str]], meta: Mapping[str, str]
    ) -> bool:
        """Record a new batch with its images queued; False when the batch id already exists."""
        now = str(time.time())
        key = batch_key(batch_id)
        with mapped_errors():
            if not self.redis.hsetnx(key, "created_at", now):
                return False
            total = 0
            chunk: list[tuple[str, str]] = []
            for pair in images:
                chunk.append(pair)
                if len(chunk) == CREATE_CHUNK:
                    self._write_images(batch_id, chunk)
                    total += len(chunk)
                    chunk = []
            self._write_images(batch_id, chunk)
            total += len(chunk)
            fields = {"total": total, "queued": total, "running": 0, "done": 0, "failed": 0}
            fields["cancelled"] = 0
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping={**fields, **meta})
            pipe.expire(key, self.ttl)
            pipe.zadd(BATCHES_KEY, {batch_id: float(now)})
            # The index outlives its records otherwise: drop batches past their TTL.
            pipe.zremrangebyscore(BATCHES_KEY, "-inf", float(now) - self.ttl)
            pipe.execute()
        return True

    def _write_images(self, batch_id: str, chunk: list[tuple[str, str]]) -> None:
        if not chunk:
            return
        pipe = self.redis.pipeline()
        for image_id, source in chunk:
            record = {"state": ImageState.QUEUED.value, "input": source, "deliveries": 0}
            pipe.hset(image_key(batch_id, image_id), mapping=record)
            pipe.expire(image_key(batch_id, image_id), self.ttl)
        pipe.rpush(f"{batch_key(batch_id)}:images", *(image_id for image_id, _ in chunk))
        pipe.expire(f"{batch_key(batch_id)}:images", self.ttl)
        pipe.execute()

    def mark_submitted(self, batch_id: str) -> None:
        """Note that every message of the batch has been sent."""
        with mapped_errors():
            self.redis.hset(batch_key(batch_id), "submitted_at", str(time.time()))

    def start(self, batch_id: str, image_id: str, worker: str) -> tuple[str, int]:
        """Move an image to running; returns (outcome, deliveries).

        The outcome is ``running`` (go ahead), ``done``/``failed``/``cancelled`` (already final:
        skip it), ``cancelled`` also for a queued image of a cancelled batch (now final),
        ``poison`` (delivered too often: now failed) or ``missing`` (no such record).
        """
        keys = [image_key(batch_id, image_id), batch_key(batch_id), EVENTS_KEY, METRICS_KEY]
        args: list[str | int | float] = [self.max_deliveries, time.time(), worker, self.ttl]
        args += [EVENTS_MAXLEN, batch_id, image_id]
        with mapped_errors():
            outcome, deliveries, completed = self._start(keys=keys, args=args)
        self._completed(batch_id, completed)
        return str(outcome), int(deliveries)

    def _completed(self, batch_id: str, completed: int) -> None:
        if completed and self.on_complete is not None:
            self.on_complete(batch_id)

    def set_stage(self, batch_id: str, image_id: str, stage: str) -> None:
        """Record which stage a running image is in (for live views)."""
        with mapped_errors():
            self.redis.hset(image_key(batch_id, image_id), "stage", stage)

    def finish(
        self,
        batch_id: str,
        image_id: str,
        state: ImageState,
        *,
        timings: Mapping[str, float] | None = None,
        output: str = "",
        error: str = "",
        retries: int | None = None,
    ) -> str:
        """Move a running image to done, failed or back to queued; returns the state it has now.

        A done image's stage timings also go into the stage histograms (``infra.status.metrics``).
        """
        fields: dict[str, str] = {"stage": state.value, "error": error[:2000]}
        if timings is not None:
            fields["timings"] = json.dumps({name: round(s, 4) for name, s in timings.items()})
        if output:
            fields["output"] = output
        if retries is not None:
            fields["retries"] = str(retries)
        pairs = [item for pair in fields.items() for item in pair]
        metrics = stage_increments(timings or {}) if state is ImageState.DONE else []
        now = time.time()
        keys = [image_key(batch_id, image_id), batch_key(batch_id), EVENTS_KEY, METRICS_KEY]
        keys.append(f"{batch_key(batch_id)}:rate")
        args: list[str | int | float] = [state.value, now, self.ttl, EVENTS_MAXLEN, batch_id]
        args += [image_id, int(now // RATE_BUCKET_S), len(fields), *pairs]
        args += [item for pair in metrics for item in pair]
        with mapped_errors():
            new, completed = self._finish(keys=keys, args=args)
        self._completed(batch_id, completed)
        return str(new)

    def cancel(self, batch_id: str) -> int | None:
        """Cancel a batch: its queued images become cancelled, running ones finish.

        Returns how many images this call cancelled, or None when there is no such batch. Images
        whose message is still on its way are refused by ``start`` (the batch's flag is set
        first), so nothing queued runs after this returns.
        """
        moved, start = 0, 0
        while True:
            with mapped_errors():
                ids = self.redis.lrange(
                    f"{batch_key(batch_id)}:images", start, start + CANCEL_CHUNK - 1
                )
                keys = [batch_key(batch_id), EVENTS_KEY, METRICS_KEY]
                keys += [image_key(batch_id, image_id) for image_id in ids]
                args = [time.time(), self.ttl, EVENTS_MAXLEN, batch_id, *ids]
                count, completed = self._cancel(keys=keys, args=args)
            if count < 0:
                return None
            moved += int(count)
            self._completed(batch_id, completed)
            if len(ids) < CANCEL_CHUNK:
                return moved
            start += CANCEL_CHUNK

    def webhook_attempted(self, batch_id: str, outcome: str, error: str = "") -> int:
        """Record one webhook delivery attempt and its outcome; returns the attempts so far."""
        key = batch_key(batch_id)
        with mapped_errors():
            pipe = self.redis.pipeline()
            pipe.hincrby(key, "webhook_attempts", 1)
            pipe.hset(key, mapping={"webhook_status": outcome, "webhook_error": error[:500]})
            attempts, _ = pipe.execute()
        return int(attempts)
