"""Batch and image status in Redis: the records, the store that moves them, metrics and progress.

Keys, all under ``KEY_PREFIX`` (``blurq:``). All but the indexes, the tenant counters, the events
stream and the metrics carry the status TTL; each transition renews its image's record and the
batch's three keys together::

    blurq:batches                     sorted set  batch id -> created time (trimmed past the TTL)
    blurq:batches:<tenant>            sorted set  the same for one tenant's batches
    blurq:tenant:<tenant>             hash        outstanding: its images queued or running;
                                                  active: its batches not finished;
                                                  images per minute, last hour (``throughput``)
    blurq:tenant:<tenant>:submits:<m> string      its submissions in minute m (expires)
    blurq:batch:<batch>               hash        totals, counters, times, parameters,
                                                  cancel flag, webhook URL and outcome,
                                                  review count, warm_at (``progress``),
                                                  messages sent, expansion's source and lease
    blurq:batch:<batch>:images        list        image ids in submission order
    blurq:batch:<batch>:rate          hash        images processed per 10 s bucket
                                                  (``window``)
    blurq:batches:phase:<phase>       sorted set  batch id -> created time, one per phase
                                                  (queued, running, finished, cancelled)
    blurq:image:<batch>:<image>       hash        state, input, deliveries, stage, timings,
                                                  output, error, retried, confidence, review
    blurq:events                      stream      one entry per transition (for live views)
    blurq:metrics                     hash        totals for Prometheus (``metrics``);
                                                  images per minute, last hour, every tenant
    blurq:running                     sorted set  <batch>:<image> of running images -> started
    blurq:webhooks:due                sorted set  batches whose webhook is due -> last sent for
    blurq:batches:creating            sorted set  batches claimed, not made whole -> claimed
    blurq:batches:sending             sorted set  batches made whole, not all sent -> made
    blurq:batches:expanding           sorted set  batches being listed -> the expander's last step

The last five are what the maintenance sweep reads (``infra.sweeper``); it empties them.

A batch id here is qualified by its tenant (``infra.tenants.qualify``): ``<tenant>/<id>``, or the
bare id for the ``default`` tenant.

An image's states (``ImageState``) and the store's transitions, each one Lua script::

    create_batch ──► queued ──start──► running ──complete──► done
    (add_expanded)   ▲  ▲                │  │
                     │  └────requeue─────┘  └─────fail──────► failed
                     └─────────────────retry─────────────────────┘
    (every move, with reject and cancel, in the table below)

    transition  from              to         when
    start       queued            running    a worker takes the image's message
                running           running    a redelivery (its worker died): counted, not moved
                queued            cancelled  ... but the batch was cancelled
                queued | running  failed     ... but it came more than max_deliveries times
    complete    running           done       the pipeline succeeded
    fail        running           failed     a permanent error, or the retries ran out
    requeue     running           queued     a transient error: the message comes back later
    reject      queued | running  failed     the message breaks the job contract
    cancel      queued            cancelled  the batch is cancelled (running images finish)
    retry       failed            queued     a person asks for the batch's failures again

``done``, ``failed`` and ``cancelled`` are final: only ``retry``, which a person asks for, leaves
one (``failed``; never in a cancelled batch). Modules: ``records`` (record types, read-only
queries), ``store`` (``StatusStore``, the only writer), ``creation`` and ``expansion`` (the steps
that make a batch, which the store inherits), ``retry`` (its retry, mixed in), ``transitions``
(loads the scripts in ``lua/``), ``metrics`` (Prometheus totals), ``window`` (rate buckets),
``progress`` (rate and ETA), ``throughput`` (images per minute), ``keys`` (the key names).
"""

from __future__ import annotations

from infra.status.creation import CLAIM_TTL_S, OUTSTANDING_RETRY_S, SEND_LEASE_S
from infra.status.keys import (
    BATCH_PHASES,
    BATCHES_KEY,
    CREATING_KEY,
    EVENTS_KEY,
    EVENTS_MAXLEN,
    EXPANDING_KEY,
    KEY_PREFIX,
    PHASE_KEYS,
    RUNNING_KEY,
    SENDING_KEY,
    WEBHOOKS_DUE_KEY,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_batches_key,
    tenant_key,
    tenant_of,
)
from infra.status.metrics import METRICS_KEY, STAGES, StageHistogram, stage_histograms
from infra.status.progress import eta_seconds, rate
from infra.status.records import CREATE_CHUNK, BatchStatus, ImageState, ImageStatus
from infra.status.store import CANCEL_CHUNK, Started, StatusStore
from infra.status.window import RATE_BUCKET_S, RATE_WINDOW_S, RecentWindow

__all__ = [
    "BATCHES_KEY",
    "BATCH_PHASES",
    "CANCEL_CHUNK",
    "CLAIM_TTL_S",
    "CREATE_CHUNK",
    "CREATING_KEY",
    "EVENTS_KEY",
    "EVENTS_MAXLEN",
    "EXPANDING_KEY",
    "KEY_PREFIX",
    "METRICS_KEY",
    "OUTSTANDING_RETRY_S",
    "PHASE_KEYS",
    "RATE_BUCKET_S",
    "RATE_WINDOW_S",
    "RUNNING_KEY",
    "SENDING_KEY",
    "SEND_LEASE_S",
    "STAGES",
    "WEBHOOKS_DUE_KEY",
    "BatchStatus",
    "ImageState",
    "ImageStatus",
    "RecentWindow",
    "StageHistogram",
    "Started",
    "StatusStore",
    "batch_key",
    "eta_seconds",
    "image_key",
    "images_key",
    "rate",
    "rate_key",
    "stage_histograms",
    "tenant_batches_key",
    "tenant_key",
    "tenant_of",
]
