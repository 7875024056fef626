"""Batch and image status in Redis: the records, the store that moves them, metrics and progress.

Keys, all under ``KEY_PREFIX`` (``blurq:``)::

    blurq:batches                     sorted set  batch id -> created time
    blurq:batch:<batch>               hash        totals, counters, times, parameters,
                                                  cancel flag, webhook URL and outcome
    blurq:batch:<batch>:images        list        image ids in submission order
    blurq:batch:<batch>:rate          hash        images finished per 10 s bucket
    blurq:image:<batch>:<image>       hash        state, input, deliveries, stage, timings,
                                                  output, error
    blurq:events                      stream      one entry per transition (for live views)
    blurq:metrics                     hash        totals for Prometheus (``metrics``)

An image's states (``ImageState``) and the store's transitions between them::

    queued ──start──► running ──finish(done)──► done
      ▲                 │ │
      └─finish(queued)──┘ └──finish(failed)───► failed   (also start: delivered too often)
    queued ──cancel, or start in a cancelled batch──► cancelled

Modules: ``records`` (keys, record types, read-only queries), ``store`` (``StatusStore``, the only
writer), ``transitions`` (the Lua scripts in ``lua/``), ``metrics`` (Prometheus totals).
"""

from __future__ import annotations

from infra.status.metrics import METRICS_KEY, STAGES, StageHistogram, stage_histograms
from infra.status.records import (
    BATCHES_KEY,
    CREATE_CHUNK,
    EVENTS_KEY,
    KEY_PREFIX,
    RATE_BUCKET_S,
    RATE_WINDOW_S,
    BatchStatus,
    ImageState,
    ImageStatus,
    batch_key,
    image_key,
)
from infra.status.store import CANCEL_CHUNK, EVENTS_MAXLEN, StatusStore

__all__ = [
    "BATCHES_KEY",
    "CANCEL_CHUNK",
    "CREATE_CHUNK",
    "EVENTS_KEY",
    "EVENTS_MAXLEN",
    "KEY_PREFIX",
    "METRICS_KEY",
    "RATE_BUCKET_S",
    "RATE_WINDOW_S",
    "STAGES",
    "BatchStatus",
    "ImageState",
    "ImageStatus",
    "StageHistogram",
    "StatusStore",
    "batch_key",
    "image_key",
    "stage_histograms",
]
