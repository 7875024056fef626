"""Retrying a batch's failed images: the one move out of a final state, asked for by a person.

``StatusStore`` inherits ``retry`` from here. It runs ``lua/retry.lua`` over the batch's image
list (or the images named) chunk by chunk: each chunk's failed images go back to queued in one
atomic step, and the caller's ``send`` is given exactly the images that step moved (id and
input) before the next chunk is read, so two retries racing never send an image twice, and the
time an image spends queued without a message is one chunk's send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from infra.errors import InvalidJob, QuotaExceeded
from infra.status.keys import (
    EVENTS_KEY,
    EVENTS_MAXLEN,
    PHASE_KEYS,
    WEBHOOKS_DUE_KEY,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_key,
    tenant_of,
)
from infra.status.metrics import METRICS_KEY
from infra.status.records import mapped_errors
from infra.tenants import split

RETRY_CHUNK = 500
"""Image records looked at per Lua call, so that Redis is never blocked for long."""
RETRY_AFTER_S = 30
"""Retry-After for a retry that would take the tenant past its outstanding images."""


class Retrying:
    """The retry transition, mixed into ``StatusStore`` (its Redis client, TTL and scripts)."""

    redis: Any
    ttl: int
    _scripts: dict[str, Any]

    def retry(
        self,
        batch_id: str,
        send: Callable[[list[tuple[str, str]]], None],
        *,
        image_ids: Sequence[str] | None = None,
        max_outstanding: int = 0,
    ) -> int:
        """Move the batch's failed images (or those of image_ids) back to queued; returns how many.

        ``send`` is called with each chunk's (image id, input) pairs as soon as they are queued
        again. A batch
        that had finished runs again and its webhook is sent again at its new end. InvalidJob
        when there is no such batch or it was cancelled; QuotaExceeded when a chunk would take
        the tenant past ``max_outstanding`` images queued or running (chunks before it stay
        retried).
        """
        moved, start = 0, 0
        while True:
            with mapped_errors():
                ids = (
                    list(image_ids[start : start + RETRY_CHUNK])
                    if image_ids is not None
                    else self.redis.lrange(images_key(batch_id), start, start + RETRY_CHUNK - 1)
                )
                reply = self._retry_chunk(batch_id, ids, max_outstanding)
            if reply:
                send(reply)
                moved += len(reply)
            if len(ids) < RETRY_CHUNK:
                return moved
            start += RETRY_CHUNK

    def _retry_chunk(
        self, batch_id: str, ids: list[str], max_outstanding: int
    ) -> list[tuple[str, str]]:
        """One Lua step over ids; the (image id, input) pairs it moved."""
        keys = [batch_key(batch_id), images_key(batch_id), rate_key(batch_id)]
        keys += [EVENTS_KEY, METRICS_KEY, tenant_key(tenant_of(batch_id)), *PHASE_KEYS]
        keys += [WEBHOOKS_DUE_KEY, *(image_key(batch_id, image_id) for image_id in ids)]
        args = [time.time(), self.ttl, EVENTS_MAXLEN, batch_id, max_outstanding, *ids]
        code, *moved = self._scripts["retry"](keys=keys, args=args)
        own = split(batch_id)[1]
        if code == -1:
            raise InvalidJob(f"no batch {own!r} (never submitted, or expired)")
        if code == -2:
            raise InvalidJob(f"batch {own!r} was cancelled: its images cannot run again")
        if code == -3:
            raise QuotaExceeded(
                f"retrying would pass the limit of {max_outstanding} images queued or running",
                retry_after=RETRY_AFTER_S,
            )
        return [(str(i), str(input_)) for i, input_ in zip(moved[::2], moved[1::2], strict=True)]
