"""The overview's table of batches: newest first, a page at a time, by outcome and by id.

Only batch records are read (counters), never images. Without a filter a page is one range of
the tenant's index of batches; with one, the index is walked from ``offset`` in chunks, ids are
matched before any record is read, and at most ``SCAN`` ids are looked at per request, so a rare
match in a long history costs a few short requests (``next_offset`` says where to go on) rather
than one long one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from infra.status import BatchStatus, StatusStore, tenant_batches_key
from infra.status.records import mapped_errors
from infra.tenants import split

Outcome = Literal["running", "finished", "failures", "cancelled"]
"""What the table can be filtered by: still running, finished cleanly, with failures, cancelled."""
SCAN = 2_000
"""Batch ids looked at per filtered request."""
CHUNK = 200
"""Batch ids read from the index per round trip."""

KEEPS: dict[str, Callable[[BatchStatus], bool]] = {
    "running": lambda b: not b.finished,
    "finished": lambda b: b.finished and not b.failed and not b.cancelled,
    "failures": lambda b: b.failed > 0,
    "cancelled": lambda b: b.cancelled > 0 or b.cancel_requested,
}


def page(
    store: StatusStore,
    tenant: str,
    *,
    offset: int = 0,
    limit: int = 25,
    outcome: Outcome | None = None,
    text: str = "",
) -> tuple[list[BatchStatus], int | None]:
    """A page of the tenant's batches from index position offset, and where the next starts."""
    if outcome is None and not text:
        found = store.recent_batches(limit, start=offset, tenant=tenant)
        return found, offset + limit if len(found) == limit else None
    keeps = KEEPS[outcome] if outcome else None
    wanted = text.lower()
    kept: list[BatchStatus] = []
    position, end = offset, offset + SCAN
    while position < end:
        with mapped_errors():
            ids = store.redis.zrevrange(tenant_batches_key(tenant), position, position + CHUNK - 1)
        matching = [i for i in ids if wanted in split(i)[1].lower()]
        records = {batch.batch_id: batch for batch in store.batches(matching)}
        for number, batch_id in enumerate(ids):
            batch = records.get(batch_id)
            if batch is not None and (keeps is None or keeps(batch)):
                kept.append(batch)
                if len(kept) == limit:
                    return kept, position + number + 1
        if len(ids) < CHUNK:
            return kept, None
        position += CHUNK
    return kept, position
