"""What a worker process builds once from Settings: storage, the status store, and backoff.

Both tasks use it: the blur task (``workers.tasks``) and the webhook sender
(``workers.webhooks``). It imports no image code, so the webhook task never loads the pipeline
or onnxruntime; the matting sessions are cached in ``workers.tasks``, the one task that runs
images. Everything here is built on first use inside the worker's child process.
"""

from __future__ import annotations

import random
from functools import cache, partial

from infra.celery_app import app, send_webhook
from infra.settings import get_settings
from infra.status import StatusStore
from infra.storage import S3Storage


@cache
def storage() -> S3Storage:
    """The process's S3 storage."""
    return S3Storage(get_settings())


@cache
def status_store() -> StatusStore:
    """The process's status store; the transition that finishes a batch queues its webhook."""
    settings = get_settings()
    return StatusStore.from_url(
        settings.redis_url,
        ttl=settings.status_ttl,
        max_deliveries=settings.max_deliveries,
        on_complete=partial(send_webhook, app),
    )


def backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, with full jitter."""
    return random.uniform(0, min(60.0, 2.0 * 2**retries))
