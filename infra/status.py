"""Batch and image status in Redis; every state transition lives in this module.

Keys, all under ``KEY_PREFIX`` (``blurq:``)::

    blurq:batches                     sorted set  batch id -> created time
    blurq:batch:<batch>               hash        totals, counters, times, parameters
    blurq:batch:<batch>:images        list        image ids in submission order
    blurq:image:<batch>:<image>       hash        state, input, deliveries, stage, timings,
                                                  output, error
    blurq:events                      stream      one entry per transition (for live views)

An image moves ``queued -> running -> done | failed``, or ``running -> queued`` when a transient
failure is retried. Each transition is one Lua script that checks the current state and moves the
batch counters in the same step, so ``queued + running + done + failed == total`` always holds,
even when a message is delivered twice. A delivery count per image turns an image that keeps
killing its worker into a failure after ``max_deliveries`` instead of an endless loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from infra.errors import StatusUnavailable

KEY_PREFIX = "blurq:"
EVENTS_MAXLEN = 100_000
"""Entries kept in the events stream; older ones are trimmed (approximately)."""
CREATE_CHUNK = 1_000
"""Image records written per Redis round trip when a batch is created."""


class ImageState(StrEnum):
    """Where one image is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def batch_key(batch_id: str) -> str:
    """The batch record's key."""
    return f"{KEY_PREFIX}batch:{batch_id}"


def image_key(batch_id: str, image_id: str) -> str:
    """One image record's key."""
    return f"{KEY_PREFIX}image:{batch_id}:{image_id}"


EVENTS_KEY = f"{KEY_PREFIX}events"
BATCHES_KEY = f"{KEY_PREFIX}batches"

# KEYS: image, batch, events. ARGV: max_deliveries, now, worker, ttl, maxlen, batch, image.
_START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', 0} end
if state == 'done' or state == 'failed' then return {state, 0} end
local deliveries = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
local now = ARGV[2]
if deliveries > tonumber(ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], state, -1)
  redis.call('HINCRBY', KEYS[2], 'failed', 1)
  redis.call('HSET', KEYS[1], 'state', 'failed', 'finished_at', now, 'error',
    'poison: delivered ' .. deliveries .. ' times without finishing')
  state = 'poison'
else
  if state == 'queued' then
    redis.call('HINCRBY', KEYS[2], 'queued', -1)
    redis.call('HINCRBY', KEYS[2], 'running', 1)
  end
  redis.call('HSET', KEYS[1], 'state', 'running', 'started_at', now, 'worker', ARGV[3],
    'stage', 'queued')
  redis.call('HSETNX', KEYS[2], 'started_at', now)
  state = 'running'
end
local b = redis.call('HMGET', KEYS[2], 'total', 'done', 'failed')
if tonumber(b[2]) + tonumber(b[3]) == tonumber(b[1]) then
  redis.call('HSETNX', KEYS[2], 'finished_at', now)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'batch', ARGV[6], 'image', ARGV[7],
  'state', state == 'poison' and 'failed' or state)
return {state, deliveries}
"""

# KEYS: image, batch, events. ARGV: new state, now, ttl, maxlen, batch, image, field/value pairs...
_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return state or 'missing' end
local new = ARGV[1]
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], new, 1)
redis.call('HSET', KEYS[1], 'state', new)
if new ~= 'queued' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[2]) end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local b = redis.call('HMGET', KEYS[2], 'total', 'done', 'failed')
if tonumber(b[2]) + tonumber(b[3]) == tonumber(b[1]) then
  redis.call('HSETNX', KEYS[2], 'finished_at', ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'batch', ARGV[5], 'image', ARGV[6],
  'state', new)
return new
"""


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

    @property
    def finished(self) -> bool:
        """True once every image is done or failed."""
        return self.done + self.failed == self.total


class StatusStore:
    """Reads and writes batch and image records; the only place that changes their state."""

    def __init__(self, client: redis.Redis, *, ttl: int, max_deliveries: int) -> None:
        # Any: redis-py's stubs cannot know that decode_responses makes every reply a str.
        self.redis: Any = client
        self.ttl = ttl
        self.max_deliveries = max_deliveries
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)

    @classmethod
    def from_url(cls, url: str, *, ttl: int, max_deliveries: int) -> StatusStore:
        """A store on the Redis at url."""
        client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, ttl=ttl, max_deliveries=max_deliveries)

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

        The outcome is ``running`` (go ahead), ``done``/``failed`` (already final: skip it),
        ``poison`` (delivered too often: now failed) or ``missing`` (no such record).
        """
        keys = [image_key(batch_id, image_id), batch_key(batch_id), EVENTS_KEY]
        args: list[str | int | float] = [self.max_deliveries, time.time(), worker, self.ttl]
        args += [EVENTS_MAXLEN, batch_id, image_id]
        with _mapped():
            outcome, deliveries = self._start(keys=keys, args=args)
        return str(outcome), int(deliveries)

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
    ) -> str:
        """Move a running image to done, failed or back to queued; returns the state it has now."""
        fields: dict[str, str] = {"stage": state.value, "error": error[:2000]}
        if timings is not None:
            fields["timings"] = json.dumps({name: round(s, 4) for name, s in timings.items()})
        if output:
            fields["output"] = output
        pairs = [item for pair in fields.items() for item in pair]
        keys = [image_key(batch_id, image_id), batch_key(batch_id), EVENTS_KEY]
        args = [state.value, time.time(), self.ttl, EVENTS_MAXLEN, batch_id, image_id, *pairs]
        with _mapped():
            return str(self._finish(keys=keys, args=args))

    def batch(self, batch_id: str) -> BatchStatus | None:
        """The batch record, or None when unknown or expired."""
        with _mapped():
            record = self.redis.hgetall(batch_key(batch_id))
        if "total" not in record:
            return None
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
        )

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
