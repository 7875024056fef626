"""Batch progress as server-sent events, fed by the Redis events stream.

Workers add one stream entry per image transition; a dashboard does not want 50,000 messages for
a 50,000-image batch. ``stream`` reads the entries with a blocking XREAD, notes which batches
changed, and at most every ``MIN_INTERVAL_S`` sends one ``batches`` event with those batches'
summaries, read from their records (counters), never from their images. Events:

    snapshot   {now, tenant, role, flower_url,         first, the recent batches and who is
                batches: [batch...], summary}          signed in (role: submit or view)
    batches    {now, batches: [batch...], summary}     batches that changed
    heartbeat  {now, batches: [batch...], summary}     every HEARTBEAT_S: unfinished batches, so
                                                       rate and ETA stay current when idle

``summary`` is the tenant's whole picture, whatever the page shows: its batches not finished and
its images queued or running, two counters the transitions keep (``StatusReader.tenant_summary``).

Each batch is shown as the JSON API shows it (``producer.http.schemas.Batch``: the tenant's own
id). A connection sees only its principal's tenant: the snapshot reads the tenant's index, and
stream entries of other tenants' batches are skipped. A connection for one batch (the batch
page) gets that batch only: its snapshot holds it (or nothing, when the tenant has no such
batch), and no other batch is ever sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from infra.settings import Settings
from infra.status import (
    EVENTS_KEY,
    BatchStatus,
    StatusStore,
    tenant_batches_key,
    tenant_of,
)
from infra.tenants import DEFAULT_TENANT, Principal, qualify
from producer.http.schemas import Batch

MIN_INTERVAL_S = 0.5
"""Shortest time between two ``batches`` events of one connection."""
HEARTBEAT_S = 5.0
"""Longest silence on a connection; also how often idle batches' rate and ETA are refreshed."""
BLOCK_MS = 500
"""How long one XREAD waits for new entries."""
READ_COUNT = 10_000
"""Stream entries taken per XREAD."""
RETRY_MS = 2_000
"""How long the browser waits before reconnecting a dropped stream."""


def summaries(batches: list[BatchStatus]) -> list[dict[str, Any]]:
    """The batches as the JSON API shows them: counts, rate (images/s), ETA, parameters, times."""
    return [Batch.of(batch).model_dump(mode="json") for batch in batches]


def snapshot(
    store: StatusStore,
    settings: Settings,
    limit: int,
    principal: Principal,
    only: str | None = None,
) -> dict[str, Any]:
    """The recent batches, newest first (or the one batch ``only``, a qualified id), with who is
    signed in and the page's settings."""
    if only is None:
        found = store.recent_batches(count=limit, tenant=principal.tenant.name)
    else:
        found = store.batches([only])
    summary = store.tenant_summary(principal.tenant.name)
    return {**signed_in(settings, principal), "batches": summaries(found), "summary": summary}


def signed_in(settings: Settings, principal: Principal) -> dict[str, Any]:
    """Who is signed in (tenant, role), the Flower link when theirs to see, and the time."""
    # Flower shows and controls every tenant's jobs: only single-tenant submitters get the link.
    operator = principal.tenant.name == DEFAULT_TENANT and principal.may_submit
    return {
        "now": time.time(),
        "tenant": principal.tenant.name,
        "role": principal.role.value,
        "flower_url": settings.flower_url if operator else "",
    }


def message(event: str, data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream(
    store: StatusStore,
    settings: Settings,
    limit: int,
    principal: Principal,
    only: str | None = None,
) -> AsyncIterator[str]:
    """Events for one connection until it closes: a snapshot, then coalesced changes (of the
    one batch ``only``, a qualified id, when given)."""
    # Any: redis-py's stubs cannot know that decode_responses makes every reply a str.
    client: Any = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        # The position is taken before the snapshot: a change in between is sent twice, not lost.
        newest = await client.xrevrange(EVENTS_KEY, count=1)
        last_id = newest[0][0] if newest else "0-0"
        first = await run_in_threadpool(snapshot, store, settings, limit, principal, only)
        yield f"retry: {RETRY_MS}\n" + message("snapshot", first)
        watch = _Watch(principal.tenant.name, first["batches"], only)
        while True:
            last_id = await _read(client, last_id, watch)
            due = await _due(client, store, watch)
            if due is not None:
                yield due
    finally:
        with anyio.CancelScope(shield=True):  # close the connection even when cancelled
            await client.aclose()


class _Watch:
    """What one connection knows: changed batches, unfinished ones, when it last sent."""

    def __init__(self, tenant: str, batches: list[dict[str, Any]], only: str | None) -> None:
        self.tenant = tenant  # only its batches are watched; ids below are qualified ones
        self.only = only  # the one batch watched, or None for all of the tenant's
        self.dirty: set[str] = set()
        self.unfinished = {qualify(tenant, b["batch_id"]) for b in batches if not b["finished"]}
        self.newest = max((b["created_at"] for b in batches), default=0.0)
        self.sent = self.beat = time.monotonic()


async def _read(client: Any, last_id: str, watch: _Watch) -> str:
    """Wait up to BLOCK_MS for stream entries; note their batches; returns the new position."""
    reply = await client.xread({EVENTS_KEY: last_id}, count=READ_COUNT, block=BLOCK_MS)
    for _, entries in reply or []:
        for entry_id, fields in entries:
            last_id = entry_id
            if tenant_of(fields["batch"]) != watch.tenant:
                continue  # another tenant's image: not even that something happened
            if watch.only is not None and fields["batch"] != watch.only:
                continue
            watch.dirty.add(fields["batch"])
    return last_id


async def _due(client: Any, store: StatusStore, watch: _Watch) -> str | None:
    """The event to send now, if any: changed batches at most every MIN_INTERVAL_S, or a beat."""
    now = time.monotonic()
    if now - watch.sent < MIN_INTERVAL_S:
        return None
    if watch.only is None:
        # A batch has no stream entry until its first image starts: look for new ones by index.
        index = tenant_batches_key(watch.tenant)
        created = await client.zrangebyscore(index, f"({watch.newest}", "+inf", withscores=True)
        for batch_id, score in created:
            watch.dirty.add(batch_id)
            watch.newest = max(watch.newest, score)
    if watch.dirty:
        event, ids = "batches", watch.dirty
    elif now - watch.beat >= HEARTBEAT_S:
        event, ids = "heartbeat", watch.unfinished
    else:
        return None
    found = await run_in_threadpool(store.batches, sorted(ids))
    data: dict[str, Any] = {"now": time.time()}
    data["batches"] = summaries(found)
    data["summary"] = await run_in_threadpool(store.tenant_summary, watch.tenant)
    if event == "batches":
        watch.sent = now
    watch.unfinished = (watch.unfinished - set(ids)) | {b.batch_id for b in found if not b.finished}
    watch.dirty = set()
    watch.beat = now
    return message(event, data)
