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
from infra.status.paging import filtered_page
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

    def read(position: int, count: int) -> list[BatchStatus | None]:
        with mapped_errors():
            ids = store.redis.zrevrange(tenant_batches_key(tenant), position, position + count - 1)
        matching = [i for i in ids if wanted in split(i)[1].lower()]
        records = {batch.batch_id: batch for batch in store.batches(matching)}
        return [records.get(batch_id) for batch_id in ids]

    return filtered_page(
        read,
        keeps or (lambda _: True),
        start=offset,
        limit=limit,
        scan=SCAN,
        chunk=CHUNK,
    )
