"""Batch and image status in Redis; every state transition lives in this module.

Keys, all under ``KEY_PREFIX`` (``blurq:``)::

    blurq:batches                     sorted set  batch id -> created time
    blurq:batch:<batch>               hash        totals, counters, times, parameters,
                                                  cancel flag, webhook URL and outcome
    blurq:batch:<batch>:images        list        image ids in submission order
    blurq:batch:<batch>:rate          hash        images finished per 10 s bucket
    blurq:image:<batch>:<image>       hash        state, input, deliveries, stage, timings,
                                                  output, error
    blurq:events                      stream      one entry per transition (for live views)
    blurq:metrics                     hash        totals for Prometheus (``infra.metrics``)

An image moves ``queued -> running -> done | failed``, or ``running -> queued`` when a transient
failure is retried, or ``queued -> cancelled`` once its batch is cancelled (images already
running finish). Each transition is one Lua script (``infra.transitions``) that checks the
current state and moves the batch counters in the same step, so
``queued + running + done + failed + cancelled == total`` always holds, even when a message is
delivered twice. A delivery count per image turns an image that keeps killing its worker into a
failure after ``max_deliveries`` instead of an endless loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from infra import transitions
from infra.errors import StatusUnavailable
from infra.metrics import METRICS_KEY, stage_increments

KEY_PREFIX = "blurq:"
EVENTS_MAXLEN = 100_000
"""Entries kept in the events stream; older ones are trimmed (approximately)."""
CREATE_CHUNK = 1_000
"""Image records written per Redis round trip when a batch is created."""
CANCEL_CHUNK = 500
"""Image records cancelled per Lua call, so that Redis is never blocked for long."""
RATE_BUCKET_S = 10
"""Width of the buckets counting finished images per batch, in seconds."""
RATE_WINDOW_S = 60
"""The recent window a batch's rate is measured over, in seconds."""


class ImageState(StrEnum):
    """Where one image is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # final: its batch was cancelled before the image started


def batch_key(batch_id: str) -> str:
    """The batch record's key."""
    return f"{KEY_PREFIX}batch:{batch_id}"


def image_key(batch_id: str, image_id: str) -> str:
    """One image record's key."""
    return f"{KEY_PREFIX}image:{batch_id}:{image_id}"


EVENTS_KEY = f"{KEY_PREFIX}events"
BATCHES_KEY = f"{KEY_PREFIX}batches"


@dataclass(frozen=True)
class ImageStatus:
    """One image's record as read back."""

    image_id: str
    state: ImageState
    input: str
    deliveries: int
    stage: str
    timings: dict[str, float]
    output: str
    error: str
    started_at: float | None = None
    finished_at: float | None = None
    retries: int = 0  # transient failures sent back to the queue (each one a new delivery)


@dataclass(frozen=True)
class BatchStatus:
    """A batch's record as read back; the counters always add up to total."""

    batch_id: str
    total: int
    queued: int
    running: int
    done: int
    failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    submitted: bool
    output: str
    params: dict[str, Any] = field(default_factory=dict)
    cancelled: int = 0
    cancel_requested: bool = False
    queue: str = ""
    webhook_url: str = ""
    webhook_status: str = ""  # pending, delivered or failed once the batch has finished
    webhook_attempts: int = 0

    @property
    def finished(self) -> bool:
        """True once every image is done, failed or cancelled."""
        return self.done + self.failed + self.cancelled == self.total


class StatusStore:
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
        with _mapped():
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
        with _mapped():
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
        with _mapped():
            outcome, deliveries, completed = self._start(keys=keys, args=args)
        self._completed(batch_id, completed)
        return str(outcome), int(deliveries)

    def _completed(self, batch_id: str, completed: int) -> None:
        if completed and self.on_complete is not None:
            self.on_complete(batch_id)

    def set_stage(self, batch_id: str, image_id: str, stage: str) -> None:
        """Record which stage a running image is in (for live views)."""
        with _mapped():
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

        A done image's stage timings also go into the stage histograms (``infra.metrics``).
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
        with _mapped():
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
            with _mapped():
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

    def recent_rate(
        self, batch_id: str, *, since: float | None = None, now: float | None = None
    ) -> float:
        """Images finished (done or failed) per second over the last ``RATE_WINDOW_S``.

        ``since`` (the batch's start) shortens the window for a batch younger than it.
        """
        now = time.time() if now is None else now
        current = int(now // RATE_BUCKET_S)
        first = current - RATE_WINDOW_S // RATE_BUCKET_S
        with _mapped():
            counts = self.redis.hmget(
                f"{batch_key(batch_id)}:rate", [str(b) for b in range(first, current + 1)]
            )
        finished = sum(int(count) for count in counts if count)
        begin = max(first * RATE_BUCKET_S, since or 0.0)
        return finished / max(now - begin, 1.0)

    def recent_batches(self, count: int = 50, *, start: int = 0) -> list[BatchStatus]:
        """Batches newest first (those still on record), ``count`` from position ``start``."""
        with _mapped():
            ids = self.redis.zrevrange(BATCHES_KEY, start, start + count - 1)
        return self.batches(ids)

    def batches(self, batch_ids: Iterable[str]) -> list[BatchStatus]:
        """The records of the given batches in one round trip; unknown or expired ones left out."""
        ids = list(batch_ids)
        with _mapped():
            pipe = self.redis.pipeline(transaction=False)
            for batch_id in ids:
                pipe.hgetall(batch_key(batch_id))
            records = pipe.execute()
        return [_batch(i, r) for i, r in zip(ids, records, strict=True) if "total" in r]

    def webhook_attempted(self, batch_id: str, outcome: str, error: str = "") -> int:
        """Record one webhook delivery attempt and its outcome; returns the attempts so far."""
        key = batch_key(batch_id)
        with _mapped():
            pipe = self.redis.pipeline()
            pipe.hincrby(key, "webhook_attempts", 1)
            pipe.hset(key, mapping={"webhook_status": outcome, "webhook_error": error[:500]})
            attempts, _ = pipe.execute()
        return int(attempts)

    def batch(self, batch_id: str) -> BatchStatus | None:
        """The batch record, or None when unknown or expired."""
        with _mapped():
            record = self.redis.hgetall(batch_key(batch_id))
        return _batch(batch_id, record) if "total" in record else None

    def images(
        self, batch_id: str, *, state: ImageState | None = None, start: int = 0, count: int = 1000
    ) -> list[ImageStatus]:
        """Image records of a batch in submission order, optionally only those in one state."""
        with _mapped():
            ids = self.redis.lrange(f"{batch_key(batch_id)}:images", start, start + count - 1)
            pipe = self.redis.pipeline()
            for image_id in ids:
                pipe.hgetall(image_key(batch_id, image_id))
            records = pipe.execute()
        found = [_image(i, r) for i, r in zip(ids, records, strict=True) if r]
        return [image for image in found if state is None or image.state is state]

    def image(self, batch_id: str, image_id: str) -> ImageStatus | None:
        """One image's record, or None when unknown or expired."""
        with _mapped():
            record = self.redis.hgetall(image_key(batch_id, image_id))
        return _image(image_id, record) if record else None

    def image_page(
        self,
        batch_id: str,
        *,
        state: ImageState | None = None,
        start: int = 0,
        limit: int = 100,
        scan: int = 10_000,
    ) -> tuple[list[ImageStatus], int | None]:
        """Up to limit images (in one state, or all) from list position start, and where to go on.

        At most ``scan`` records are read per call, so a rare state in a huge batch costs several
        short calls rather than one long one; the next position is None at the end of the list.
        """
        found: list[ImageStatus] = []
        position, end = start, start + scan
        while position < end:
            chunk = min(CREATE_CHUNK, end - position)
            with _mapped():
                ids = self.redis.lrange(
                    f"{batch_key(batch_id)}:images", position, position + chunk - 1
                )
                pipe = self.redis.pipeline()
                for image_id in ids:
                    pipe.hgetall(image_key(batch_id, image_id))
                records = pipe.execute()
            for offset, (image_id, record) in enumerate(zip(ids, records, strict=True)):
                image = _image(image_id, record) if record else None
                if image is not None and (state is None or image.state is state):
                    found.append(image)
                    if len(found) == limit:
                        return found, position + offset + 1
            if len(ids) < chunk:
                return found, None
            position += chunk
        return found, position

    def batch_states(self) -> dict[str, int]:
        """How many batches on record are queued, running, finished or cancelled."""
        fields = ("total", "done", "failed", "cancelled", "started_at", "cancelled_at")
        with _mapped():
            ids = self.redis.zrange(BATCHES_KEY, 0, -1)
            pipe = self.redis.pipeline()
            for batch_id in ids:
                pipe.hmget(batch_key(batch_id), fields)
            rows = pipe.execute()
        counts = dict.fromkeys(("queued", "running", "finished", "cancelled"), 0)
        for total, done, failed, cancelled, started, cancel_flag in rows:
            if total is None:
                continue  # expired: still in the index until the next batch trims it
            if cancel_flag:
                counts["cancelled"] += 1
            elif int(done) + int(failed) + int(cancelled or 0) == int(total):
                counts["finished"] += 1
            else:
                counts["running" if started else "queued"] += 1
        return counts


def _batch(batch_id: str, record: dict[str, str]) -> BatchStatus:
    return BatchStatus(
        batch_id=batch_id,
        total=int(record["total"]),
        queued=int(record["queued"]),
        running=int(record["running"]),
        done=int(record["done"]),
        failed=int(record["failed"]),
        created_at=float(record["created_at"]),
        started_at=_float(record.get("started_at")),
        finished_at=_float(record.get("finished_at")),
        submitted="submitted_at" in record,
        output=record.get("output", ""),
        params=json.loads(record.get("params", "{}")),
        cancelled=int(record.get("cancelled", 0)),
        cancel_requested="cancelled_at" in record,
        queue=record.get("queue", ""),
        webhook_url=record.get("webhook_url", ""),
        webhook_status=record.get("webhook_status", ""),
        webhook_attempts=int(record.get("webhook_attempts", 0)),
    )


def _image(image_id: str, record: dict[str, str]) -> ImageStatus:
    return ImageStatus(
        image_id=image_id,
        state=ImageState(record["state"]),
        input=record.get("input", ""),
        deliveries=int(record.get("deliveries", 0)),
        stage=record.get("stage", ""),
        timings=json.loads(record.get("timings", "{}")),
        output=record.get("output", ""),
        error=record.get("error", ""),
        started_at=_float(record.get("started_at")),
        finished_at=_float(record.get("finished_at")),
        retries=int(record.get("retries", 0)),
    )


def _float(value: str | None) -> float | None:
    return float(value) if value else None


@contextmanager
def _mapped() -> Iterator[None]:
    """Turn Redis connection failures into StatusUnavailable (transient)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise StatusUnavailable(f"Redis unavailable: {error}") from error
