"""The status store: batch and image records in Redis; every state transition lives here.

The records, their keys and the state machine are drawn in ``infra.status``. Each transition is
a method named after the one legal move it makes (``start``, ``complete``, ``fail``, ``requeue``,
``reject``, ``cancel``), run as one Lua script (``infra.status.transitions``) that checks the
current state and moves the batch counters in the same step, so
``queued + running + done + failed + cancelled == total`` always holds, even when a message is
delivered twice. A transition that does not apply changes nothing and returns the state the image
is in. A delivery count per image turns an image that keeps killing its worker into a failure
after ``max_deliveries`` instead of an endless loop.

A batch is created in three steps (claim the id, write the image records in chunks, then the
counters that make it exist), each checking that the claim is still this submission's; every
key has its TTL from the first step. A submission that stops half-way leaves a batch that reads
as absent, and the next submission of the same id takes it over and writes it whole.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, NamedTuple

import redis

from infra.errors import BatchConflict, QuotaExceeded, TransientError
from infra.status import transitions
from infra.status.keys import (
    BATCHES_KEY,
    EVENTS_KEY,
    PHASE_KEYS,
    batch_key,
    image_key,
    images_key,
    rate_key,
    submits_key,
    tenant_batches_key,
    tenant_key,
    tenant_of,
)
from infra.status.metrics import METRICS_KEY, stage_increments
from infra.status.records import CREATE_CHUNK, RATE_BUCKET_S, StatusReader, mapped_errors
from infra.tenants import split

EVENTS_MAXLEN = 100_000
"""Entries kept in the events stream; older ones are trimmed (approximately)."""
CLAIM_TTL_S = 60
"""Seconds a half-written batch holds its id against other requests once its writer stops."""
SEND_LEASE_S = 60
"""Seconds a batch's sender may show no progress before a resubmission takes over sending."""
OUTSTANDING_RETRY_S = 30
"""Retry-After for a tenant over its outstanding images: some of them will have finished."""
CANCEL_CHUNK = 500
"""Image records cancelled per Lua call, so that Redis is never blocked for long."""
Arg = str | int | float
"""What a Lua script's ARGV takes (redis-py turns each into a string)."""
ERROR_CHARS = 2000
"""Longest error text kept on an image record."""


class Started(NamedTuple):
    """What ``StatusStore.start`` found: go ahead or not, and the batch it belongs to."""

    outcome: str
    deliveries: int
    batch_created: float  # the batch record's created_at (0 when none): which batch of that id


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

    def create_batch(
        self,
        batch_id: str,
        images: Iterable[tuple[str, str]],
        meta: Mapping[str, str],
        *,
        digest: str = "",
        max_outstanding: int = 0,
    ) -> bool:
        """Record a new batch with its images queued; False when the batch id already exists.

        ``images`` are (image id, input) pairs; ``digest`` names the request (inputs, output,
        parameters, webhook). BatchConflict when the id exists, or is being created, for another
        digest; a half-written batch of the same request is written again from the start
        (TransientError for the submission whose claim is taken over that way). QuotaExceeded
        when the batch would take its tenant past ``max_outstanding`` images queued or running
        (0: no limit), checked and counted in one step.
        """
        token, now = uuid.uuid4().hex, time.time()
        claim = [batch_key(batch_id), images_key(batch_id)]
        with mapped_errors():
            code, known = self._run("create_begin", claim, [token, now, CLAIM_TTL_S, digest])
            if int(code) != 1:
                _same_request(batch_id, digest, str(known))
                return False
            total = 0
            for chunk in _chunks(images, CREATE_CHUNK):
                keys = claim + [image_key(batch_id, image_id) for image_id, _ in chunk]
                args: list[Arg] = [token, self.ttl, CLAIM_TTL_S]
                args += [value for pair in chunk for value in pair]
                self._claimed(batch_id, self._run("create_images", keys, args))
                total += len(chunk)
            tenant = tenant_of(batch_id)
            keys = [*claim, rate_key(batch_id), BATCHES_KEY]
            keys += [tenant_batches_key(tenant), tenant_key(tenant), *PHASE_KEYS]
            end: list[Arg] = [token, now, self.ttl, batch_id, total, max_outstanding]
            made = int(self._run("create_end", keys, [*end, *_flat(meta)]))
        if made < 0:
            raise QuotaExceeded(
                f"{total} more images would pass the limit of {max_outstanding} queued or running",
                retry_after=OUTSTANDING_RETRY_S,
            )
        self._claimed(batch_id, made)
        return True

    @staticmethod
    def _claimed(batch_id: str, kept: int) -> None:
        if not kept:
            raise TransientError(
                f"batch {batch_id!r} is being created by another submission; submit it again"
            )

    def claim_sending(self, batch_id: str) -> bool:
        """True when the caller should send the batch's queued messages: it was created, not
        all sent, and its sender has shown no progress for ``SEND_LEASE_S``."""
        with mapped_errors():
            return bool(
                self._run("claim_sending", [batch_key(batch_id)], [time.time(), SEND_LEASE_S])
            )

    def still_sending(self, batch_id: str, sent: int) -> None:
        """Renew the sender's lease and note how many of the batch's first messages are sent."""
        self._hset(batch_key(batch_id), {"sending_at": str(time.time()), "sent": str(sent)})

    def mark_submitted(self, batch_id: str) -> None:
        """Note that every message of the batch has been sent."""
        self._hset(batch_key(batch_id), {"submitted_at": str(time.time())})

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
        self, batch_id: str, image_id: str, *, timings: Mapping[str, float], output: str
    ) -> str:
        """Move a running image to done with its stage timings and output; its state now.

        The timings also go into the stage histograms (``infra.status.metrics``).
        """
        rounded = json.dumps({name: round(s, 4) for name, s in timings.items()})
        increments = [value for pair in stage_increments(timings) for value in pair]
        return self._move("complete", batch_id, image_id, rounded, output, *increments)

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
            self._run("update", [key], _flat(fields))

    def _move(self, script: str, batch_id: str, image_id: str, *args: Arg) -> str:
        state, completed = self._image(script, batch_id, image_id, *args)
        self._completed(batch_id, completed)
        return str(state)

    def _image(self, script: str, batch_id: str, image_id: str, *args: Arg) -> list[Any]:
        """Run an image transition with the calling convention of ``lua/common.lua``."""
        keys = [image_key(batch_id, image_id), batch_key(batch_id), images_key(batch_id)]
        keys += [rate_key(batch_id), EVENTS_KEY, METRICS_KEY, tenant_key(tenant_of(batch_id))]
        keys += PHASE_KEYS
        now = time.time()
        shared: list[Arg] = [now, self.ttl, EVENTS_MAXLEN, batch_id, image_id]
        shared.append(int(now // RATE_BUCKET_S))
        with mapped_errors():
            return list(self._run(script, keys, [*shared, *args]))

    def _run(self, script: str, keys: list[str], args: Sequence[Arg]) -> Any:
        return self._scripts[script](keys=keys, args=args)

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
                keys += [image_key(batch_id, image_id) for image_id in ids]
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
        """Record a webhook attempt's outcome (retrying, delivered, failed); returns attempts."""
        key = batch_key(batch_id)
        with mapped_errors():
            pipe = self.redis.pipeline()
            pipe.hincrby(key, "webhook_attempts", 1)
            pipe.hset(key, mapping={"webhook_status": outcome, "webhook_error": error[:500]})
            pipe.expire(key, self.ttl, nx=True)  # an expired batch comes back with the TTL
            attempts, *_ = pipe.execute()
        return int(attempts)


def _same_request(batch_id: str, digest: str, known: str) -> None:
    """BatchConflict when the batch was (or is being) made by a request with another digest."""
    if digest and known and known != digest:
        own = split(batch_id)[1]
        raise BatchConflict(
            f"batch {own!r} exists with other inputs, output, parameters or webhook"
        )


def _chunks(pairs: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    remaining = iter(pairs)
    while chunk := list(islice(remaining, size)):
        yield chunk


def _flat(fields: Mapping[str, str]) -> list[str]:
    return [value for pair in fields.items() for value in pair]
