"""The Redis keys of batch and image records, all under ``KEY_PREFIX`` (drawn in ``infra.status``).

Batch ids here are qualified by their tenant (``infra.tenants.qualify``).
"""

from __future__ import annotations

from infra.tenants import split

KEY_PREFIX = "blurq:"


def batch_key(batch_id: str) -> str:
    """The batch record's key."""
    return f"{KEY_PREFIX}batch:{batch_id}"


def images_key(batch_id: str) -> str:
    """The key of the batch's list of image ids."""
    return f"{batch_key(batch_id)}:images"


def rate_key(batch_id: str) -> str:
    """The key of the batch's rate buckets (images finished per ``RATE_BUCKET_S``)."""
    return f"{batch_key(batch_id)}:rate"


def image_key(batch_id: str, image_id: str) -> str:
    """One image record's key."""
    return f"{KEY_PREFIX}image:{batch_id}:{image_id}"


EVENTS_KEY = f"{KEY_PREFIX}events"
EVENTS_MAXLEN = 100_000
"""Entries kept in the events stream; older ones are trimmed (approximately)."""
BATCHES_KEY = f"{KEY_PREFIX}batches"
BATCH_PHASES = ("queued", "running", "finished", "cancelled")
"""A batch's phase for the metrics: created, an image started, every image final, cancelled."""
PHASE_KEYS = tuple(f"{KEY_PREFIX}batches:phase:{phase}" for phase in BATCH_PHASES)
"""One sorted set per phase (batch id -> created time), kept by the transitions (``common.lua``)."""


RUNNING_KEY = f"{KEY_PREFIX}running"
"""Sorted set: ``<batch id>:<image id>`` of every running image -> when it last started."""
WEBHOOKS_DUE_KEY = f"{KEY_PREFIX}webhooks:due"
"""Sorted set: batches whose webhook is pending or retrying -> when it was last sent for."""
CREATING_KEY = f"{KEY_PREFIX}batches:creating"
"""Sorted set: batches being created (claimed, not made whole yet) -> when claimed."""
SENDING_KEY = f"{KEY_PREFIX}batches:sending"
"""Sorted set: batches made whole whose messages are not all sent -> when their sending began."""
EXPANDING_KEY = f"{KEY_PREFIX}batches:expanding"
"""Sorted set: batches whose inputs are being listed in the background -> last progress."""


def tenant_of(batch_id: str) -> str:
    """The tenant a qualified batch id belongs to (``infra.tenants.split``)."""
    return split(batch_id)[0]


def tenant_key(tenant: str) -> str:
    """The key of a tenant's counters: ``outstanding`` (its images queued or running) and
    ``active`` (its batches not finished)."""
    return f"{KEY_PREFIX}tenant:{tenant}"


def tenant_batches_key(tenant: str) -> str:
    """The key of a tenant's index of batches (batch id -> created time)."""
    return f"{KEY_PREFIX}batches:{tenant}"


def submits_key(tenant: str, minute: int) -> str:
    """The key counting a tenant's submissions in one minute (unix time // 60)."""
    return f"{tenant_key(tenant)}:submits:{minute}"
