"""Batch and image records in Redis as read back: keys, states, and the read-only queries.

The keys are drawn in ``infra.status``'s docstring (named in ``infra.status.keys``). Only
``infra.status.store.StatusStore`` writes them; it inherits the queries below.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from infra.errors import StatusUnavailable
from infra.status.keys import (
    BATCH_PHASES,
    BATCHES_KEY,
    EXPANDING_KEY,
    PHASE_KEYS,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_batches_key,
    tenant_key,
)
from infra.status.paging import filtered_page
from infra.status.window import RecentWindow, rate_buckets

CREATE_CHUNK = 1_000
"""Image records written (and read) per Redis round trip."""


class ImageState(StrEnum):
    """Where one image is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # final: its batch was cancelled before the image started


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
    retried: int = 0  # times a person sent it again after it failed (``StatusStore.retry``)
    confidence: float | None = None  # how sure the matte is, 0..1; None before it is known
    review: bool | None = None  # True when the matte is in doubt and a person should look


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
    # "" until the batch finishes; then pending, retrying (an attempt failed, another is due),
    # and at last delivered or failed (workers.webhooks)
    webhook_status: str = ""
    webhook_attempts: int = 0
    request_digest: str = ""  # of the submission that made it (inputs, output, params, webhook)
    sent: int = 0  # its first messages known to be sent (where a takeover of sending goes on)
    expanding: bool = False  # its inputs are still being listed: total is what is found so far
    error: str = ""  # why the batch failed as a whole (its expansion), "" when it did not
    recent: RecentWindow | None = None  # read with the record; None when built by hand
    warm_at: float | None = None  # its first image counted in the rate (``infra.status.progress``)
    review: int = 0  # done images whose matte is in doubt

    @property
    def finished(self) -> bool:
        """True once every image is done, failed or cancelled, and no more are to be found."""
        return not self.expanding and self.done + self.failed + self.cancelled == self.total


class StatusReader:
    """The read-only queries over batch and image records."""

    # Any: redis-py's stubs cannot know that decode_responses makes every reply a str.
    redis: Any

    def recent_batches(
        self, count: int = 50, *, start: int = 0, tenant: str | None = None
    ) -> list[BatchStatus]:
        """Batches newest first (those still on record), ``count`` from position ``start``.

        With tenant, only that tenant's batches; without, every tenant's.
        """
        index = BATCHES_KEY if tenant is None else tenant_batches_key(tenant)
        with mapped_errors():
            ids = self.redis.zrevrange(index, start, start + count - 1)
        return self.batches(ids)

    def outstanding(self, tenant: str) -> int:
        """How many of the tenant's images are queued or running (a counter, O(1))."""
        with mapped_errors():
            value = self.redis.hget(tenant_key(tenant), "outstanding")
        return int(value or 0)

    def tenant_summary(self, tenant: str) -> dict[str, int]:
        """The tenant's batches not finished (``active``, counted from this release on) and its
        images queued or running (``outstanding``): two counters the transitions keep."""
        with mapped_errors():
            active, outstanding = self.redis.hmget(tenant_key(tenant), "active", "outstanding")
        return {"active": max(0, int(active or 0)), "outstanding": int(outstanding or 0)}

    def batches(self, batch_ids: Iterable[str]) -> list[BatchStatus]:
        """The records of the given batches in one round trip; unknown or expired ones left out."""
        ids = list(batch_ids)
        now = time.time()
        buckets, since = rate_buckets(now)
        with mapped_errors():
            pipe = self.redis.pipeline(transaction=False)
            for batch_id in ids:
                pipe.hgetall(batch_key(batch_id))
                pipe.hmget(rate_key(batch_id), buckets)
            replies = pipe.execute()
        found = []
        for batch_id, record, counts in zip(ids, replies[::2], replies[1::2], strict=True):
            if "total" in record:  # a batch still being created has none yet
                recent = RecentWindow(sum(int(c) for c in counts if c), since, now)
                found.append(_batch(batch_id, record, recent))
        return found

    def batch(self, batch_id: str) -> BatchStatus | None:
        """The batch record, or None when unknown, expired or still being created."""
        found = self.batches([batch_id])
        return found[0] if found else None

    def images(
        self, batch_id: str, *, state: ImageState | None = None, start: int = 0, count: int = 1000
    ) -> list[ImageStatus]:
        """Image records of a batch in submission order, optionally only those in one state."""
        with mapped_errors():
            ids = self.redis.lrange(images_key(batch_id), start, start + count - 1)
            pipe = self.redis.pipeline()
            for image_id in ids:
                pipe.hgetall(image_key(batch_id, image_id))
            records = pipe.execute()
        found = [_image(i, r) for i, r in zip(ids, records, strict=True) if r]
        return [image for image in found if state is None or image.state is state]

    def image(self, batch_id: str, image_id: str) -> ImageStatus | None:
        """One image's record, or None when unknown or expired."""
        with mapped_errors():
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
        review: bool | None = None,
        text: str = "",
    ) -> tuple[list[ImageStatus], int | None]:
        """Up to limit images from list position start, and where to go on.

        Only images in ``state``, with the ``review`` flag, and whose input key contains ``text``
        (any case) are kept, when those are given. At most ``scan`` records are read per call,
        so a rare image in a huge batch costs several short calls rather than one long one; the
        next position is None at the end of the list.
        """
        wanted = _Wanted(state, review, text.lower())

        def read(position: int, count: int) -> list[ImageStatus | None]:
            with mapped_errors():
                ids = self.redis.lrange(images_key(batch_id), position, position + count - 1)
                pipe = self.redis.pipeline()
                for image_id in ids:
                    pipe.hgetall(image_key(batch_id, image_id))
                records = pipe.execute()
            return [_image(i, r) if r else None for i, r in zip(ids, records, strict=True)]

        return filtered_page(
            read, wanted.keeps, start=start, limit=limit, scan=scan, chunk=CREATE_CHUNK
        )

    def batch_states(self) -> dict[str, int]:
        """How many batches on record are queued, running, finished or cancelled, and how many
        of them are expanding: five ZCARDs of sets the transitions keep, whatever the number of
        batches (the phase sets are trimmed with the index of batches)."""
        with mapped_errors():
            pipe = self.redis.pipeline(transaction=False)
            for key in (*PHASE_KEYS, EXPANDING_KEY):
                pipe.zcard(key)
            counts = pipe.execute()
        states = (*BATCH_PHASES, "expanding")
        return {state: int(count) for state, count in zip(states, counts, strict=True)}


@dataclass(frozen=True)
class _Wanted:
    """The images a page keeps: a state, a review flag, a piece of the input key (lower case)."""

    state: ImageState | None
    review: bool | None
    text: str

    def keeps(self, image: ImageStatus) -> bool:
        key = image.input.split("/", 3)[-1]  # s3://bucket/key: the key only
        return (
            (self.state is None or image.state is self.state)
            and (self.review is None or image.review is self.review)
            and self.text in key.lower()
        )


def _batch(batch_id: str, record: dict[str, str], recent: RecentWindow) -> BatchStatus:
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
        request_digest=record.get("digest", ""),
        sent=int(record.get("sent", 0)),
        expanding="expanding" in record,
        error=record.get("error", ""),
        recent=recent,
        warm_at=_float(record.get("warm_at")),
        review=int(record.get("review", 0)),
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
        retried=int(record.get("retried", 0)),
        confidence=_float(record.get("confidence")),
        review={"1": True, "0": False}.get(record.get("review", "")),
    )


def _float(value: str | None) -> float | None:
    return float(value) if value else None


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn Redis connection failures into StatusUnavailable (transient)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise StatusUnavailable(f"Redis unavailable: {error}") from error
