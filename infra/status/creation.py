"""Making a batch: its records written in steps, its messages' sending leased, and what a
creation that stopped half-way left behind dropped.

A batch is created in three steps (claim the id, write the image records in chunks, then the
counters that make it exist), each checking that the claim is still this submission's; every
key has its TTL from the first step. A submission that stops half-way leaves a batch that reads
as absent, and the next submission of the same id takes it over and writes it whole; if none
comes, the maintenance sweep drops what it wrote (``drop_half_created``). Then its messages are
sent under a lease (``claim_sending``): a sender that stops is taken over by a resubmission or by
the sweep, which go on from the messages it had sent (``still_sending``).

``BatchCreation`` holds these steps; ``infra.status.store.StatusStore`` inherits them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from infra.errors import BatchConflict, QuotaExceeded, TransientError
from infra.status.keys import (
    BATCHES_KEY,
    CREATING_KEY,
    PHASE_KEYS,
    SENDING_KEY,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_batches_key,
    tenant_key,
    tenant_of,
)
from infra.status.records import CREATE_CHUNK, StatusReader, mapped_errors
from infra.tenants import split

CLAIM_TTL_S = 60
"""Seconds a half-written batch holds its id against other requests once its writer stops."""
SEND_LEASE_S = 60
"""Seconds a batch's sender may show no progress before a resubmission takes over sending."""
OUTSTANDING_RETRY_S = 30
"""Retry-After for a tenant over its outstanding images: some of them will have finished."""
Arg = str | int | float
"""What a Lua script's ARGV takes (redis-py turns each into a string)."""


class BatchCreation(StatusReader):
    """The steps that make a batch and lease the sending of its messages."""

    ttl: int
    _scripts: dict[str, Any]

    def _run(self, script: str, keys: list[str], args: Sequence[Arg]) -> Any:
        return self._scripts[script](keys=keys, args=args)

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
            begin: list[Arg] = [token, now, CLAIM_TTL_S, digest, batch_id]
            code, known = self._run("create_begin", [*claim, CREATING_KEY], begin)
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
            keys += [CREATING_KEY, SENDING_KEY]
            end: list[Arg] = [token, now, self.ttl, batch_id, total, max_outstanding]
            made = int(self._run("create_end", keys, [*end, *flat(meta)]))
        if made < 0:
            self.drop_half_created(batch_id, time.time())
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

    def drop_half_created(self, batch_id: str, cutoff: float) -> bool:
        """Drop what a creation of batch_id wrote, unless its id was claimed after cutoff (unix
        seconds); True when nothing of it is left (or it was made whole after all)."""
        keys = [batch_key(batch_id), images_key(batch_id), CREATING_KEY]
        while True:
            with mapped_errors():
                ids = self.redis.lrange(images_key(batch_id), 0, CREATE_CHUNK - 1)
                chunk = keys + [image_key(batch_id, image_id) for image_id in ids]
                left = int(self._run("drop_half_created", chunk, [batch_id, cutoff]))
            if left <= 0:
                return left == 0

    def claim_sending(self, batch_id: str) -> bool:
        """True when the caller should send the batch's queued messages: it was created, not
        all sent, and its sender has shown no progress for ``SEND_LEASE_S``."""
        with mapped_errors():
            return bool(
                self._run("claim_sending", [batch_key(batch_id)], [time.time(), SEND_LEASE_S])
            )

    def still_sending(self, batch_id: str, sent: int) -> None:
        """Renew the sender's lease and note how many of the batch's first messages are sent."""
        fields = {"sending_at": str(time.time()), "sent": str(sent)}
        with mapped_errors():
            self._run("update", [batch_key(batch_id)], flat(fields))

    def mark_submitted(self, batch_id: str) -> None:
        """Note that every message of the batch has been sent."""
        with mapped_errors():
            self._run("update", [batch_key(batch_id)], ["submitted_at", str(time.time())])
            self.redis.zrem(SENDING_KEY, batch_id)


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


def flat(fields: Mapping[str, str]) -> list[str]:
    """A mapping as a Lua script's field, value, ... arguments."""
    return [value for pair in fields.items() for value in pair]
