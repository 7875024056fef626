"""Images done and failed per minute over the last hour, for a tenant or the whole fleet.

Every transition that ends an image done or failed counts it in a ring of 60 minute slots
(``count_minute`` in ``lua/common.lua``) kept in two hashes: the tenant's counters
(``blurq:tenant:<tenant>``) and the metrics (``blurq:metrics``, every tenant). Slot
``m mod 60`` holds ``minute:<slot>`` (the minute m it counts, unix time // 60),
``done:<slot>`` and ``failed:<slot>``; a slot is reset when its minute comes round again, so the
last hour is one HGETALL and the hashes never grow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from infra.status.keys import tenant_key
from infra.status.metrics import METRICS_KEY
from infra.status.records import StatusReader, mapped_errors

MINUTES = 60
"""Slots in the ring: the last hour."""


@dataclass(frozen=True)
class Minute:
    """Images that ended done or failed in one minute starting at ``at`` (unix seconds)."""

    at: float
    done: int
    failed: int


def last_hour(raw: Mapping[str, str], now: float) -> list[Minute]:
    """The ring's last 60 minutes up to now's, oldest first; minutes with nothing count 0."""
    current = int(now // 60)
    counted: dict[int, tuple[int, int]] = {}
    for slot in range(MINUTES):
        minute = raw.get(f"minute:{slot}")
        if minute is not None and current - MINUTES < int(minute) <= current:
            counted[int(minute)] = (
                int(raw.get(f"done:{slot}", 0)),
                int(raw.get(f"failed:{slot}", 0)),
            )
    return [
        Minute(minute * 60.0, *counted.get(minute, (0, 0)))
        for minute in range(current - MINUTES + 1, current + 1)
    ]


def read(store: StatusReader, tenant: str | None, now: float | None = None) -> list[Minute]:
    """The last hour of one tenant's images, or of every tenant's when tenant is None."""
    with mapped_errors():
        raw = store.redis.hgetall(METRICS_KEY if tenant is None else tenant_key(tenant))
    return last_hour(raw, time.time() if now is None else now)
