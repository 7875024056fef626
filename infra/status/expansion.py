"""A batch whose inputs are listed in the background: its record from the request on, then its
images chunk by chunk as the expander finds them (``producer.expander``).

    create_expanding ─► claim_expansion ─► reserve_expansion ─► add_expanded... ─► end_expansion
    (the request:        (an expander's     (the inputs counted   (each chunk:       (all found,
     expanding, empty)    lease)             against the quota)    records, queued)   or failed)

Every step after the first checks that its caller still holds the expander's lease, which each
step renews; an expander that stalls for ``SEND_LEASE_S`` loses it to the next one (the
maintenance sweep sends the batch to an expander again), which goes on from the batch's ``total``
(records written) and ``sent`` (messages sent). ``BatchExpansion`` holds these steps;
``infra.status.store.StatusStore`` inherits them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from infra.errors import BatchConflict, QuotaExceeded
from infra.status.creation import OUTSTANDING_RETRY_S, SEND_LEASE_S, Arg, BatchCreation, flat
from infra.status.keys import (
    BATCHES_KEY,
    EXPANDING_KEY,
    PHASE_KEYS,
    WEBHOOKS_DUE_KEY,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_batches_key,
    tenant_key,
    tenant_of,
)
from infra.status.records import mapped_errors
from infra.tenants import split


@dataclass(frozen=True)
class Expanding:
    """Where an expansion stands: what it lists, and how far it got."""

    source: str  # the prefix or manifest, as the request gave it
    kind: str  # "prefix" or "manifest"
    queue: str  # as asked ("" to choose by size) until counted; then the batch's queue
    counted: int | None  # inputs the first pass found (None: not counted yet)
    total: int  # image records written
    sent: int  # their messages sent


class BatchExpansion(BatchCreation):
    """The steps of a batch expanded in the background."""

    # The store's own transitions, which end_expansion uses.
    cancel: Callable[[str], int | None]
    _completed: Callable[[str, int], None]

    def create_expanding(self, batch_id: str, meta: Mapping[str, str], *, digest: str) -> bool:
        """Record the batch, expanding and empty; False when the id exists for the same request.

        BatchConflict when it exists (or is being created) for another request.
        """
        tenant = tenant_of(batch_id)
        keys = [batch_key(batch_id), images_key(batch_id), rate_key(batch_id), BATCHES_KEY]
        keys += [tenant_batches_key(tenant), tenant_key(tenant), *PHASE_KEYS, EXPANDING_KEY]
        args: list[Arg] = [time.time(), self.ttl, batch_id, digest, *flat(meta)]
        with mapped_errors():
            made, known = self._run("expand_begin", keys, args)
        if not int(made) and known and known != digest:
            own = split(batch_id)[1]
            raise BatchConflict(
                f"batch {own!r} exists with other inputs, output, parameters or webhook"
            )
        return bool(int(made))

    def expanding(self, batch_id: str) -> Expanding | None:
        """Where the batch's expansion stands; None when it is not expanding (or unknown)."""
        fields = ("expanding", "prefix", "manifest", "queue", "counted", "total", "sent")
        with mapped_errors():
            found = self.redis.hmget(batch_key(batch_id), fields)
        flag, prefix, manifest, queue, counted, total, sent = found
        if not flag:
            return None
        kind = "prefix" if prefix else "manifest"
        return Expanding(
            prefix or manifest or "",
            kind,
            queue or "",
            None if counted is None else int(counted),
            int(total or 0),
            int(sent or 0),
        )

    def claim_expansion(self, batch_id: str, token: str) -> str:
        """Take (or renew) the lease on expanding the batch: ``held``, ``cancelled`` (held, but
        the batch was cancelled: list no further), or ``lost`` (another expander holds it, or
        the batch is no longer expanding)."""
        args: list[Arg] = [token, time.time(), SEND_LEASE_S, batch_id]
        with mapped_errors():
            found = int(self._run("expand_claim", [batch_key(batch_id), EXPANDING_KEY], args))
        return ("lost", "held", "cancelled")[found]

    def reserve_expansion(
        self, batch_id: str, token: str, count: int, *, limit: int, queue: str
    ) -> bool:
        """Count the batch's inputs against its tenant's outstanding images (limit; 0: none) and
        fix its queue; False when the lease is lost, QuotaExceeded past the limit."""
        keys = [batch_key(batch_id), tenant_key(tenant_of(batch_id))]
        with mapped_errors():
            reserved = int(self._run("expand_reserve", keys, [token, count, limit, queue]))
        if reserved < 0:
            raise QuotaExceeded(
                f"{count} more images would pass the limit of {limit} queued or running",
                retry_after=OUTSTANDING_RETRY_S,
            )
        return bool(reserved)

    def add_expanded(self, batch_id: str, token: str, images: Sequence[tuple[str, str]]) -> bool:
        """Append (image id, input) records, queued; False when the lease is lost."""
        keys = [batch_key(batch_id), images_key(batch_id), rate_key(batch_id), EXPANDING_KEY]
        keys += [image_key(batch_id, image_id) for image_id, _ in images]
        args: list[Arg] = [token, time.time(), self.ttl, batch_id]
        args += [value for pair in images for value in pair]
        with mapped_errors():
            return bool(self._run("expand_images", keys, args))

    def end_expansion(self, batch_id: str, token: str, error: str = "") -> bool:
        """The batch's inputs are all found and sent, or (error) it failed as a whole, its
        queued images cancelled; False when the lease is lost."""
        tenant = tenant_key(tenant_of(batch_id))
        keys = [batch_key(batch_id), images_key(batch_id), rate_key(batch_id), tenant]
        keys += [*PHASE_KEYS, WEBHOOKS_DUE_KEY, EXPANDING_KEY]
        args: list[Arg] = [token, time.time(), self.ttl, batch_id, error[:2000]]
        with mapped_errors():
            ended, completed, cancelling = self._run("expand_end", keys, args)
        if not int(ended):
            return False
        if int(cancelling):
            self.cancel(batch_id)  # the flag is set: its queued images end cancelled
        self._completed(batch_id, int(completed))
        return True
