"""The Celery app, configured in one place from Settings.

Both sides use it: the producer sends tasks by name (it never imports the worker code), the
worker registers its tasks on it (``workers.tasks``, ``workers.webhooks``).
"""

from __future__ import annotations

import ssl
from typing import Any

from celery import Celery
from kombu.entity import Queue

from infra.jobs import QUEUES
from infra.settings import Settings, get_settings

BLUR_TASK = "blurq.blur_image"
"""The name the producer sends and the worker registers."""
WEBHOOK_TASK = "blurq.send_webhook"
"""The task that POSTs a batch's completion webhook (``workers.webhooks``)."""
WEBHOOK_QUEUE = "webhooks"
"""Its own queue, so that a slow receiver never sits in front of images."""
WORKER_QUEUES = ("interactive", WEBHOOK_QUEUE, "bulk")
"""What a worker consumes, in priority order: webhooks ahead of a bulk backlog."""
EXPAND_TASK = "blurq.expand_batch"
"""The task that lists a prefix or manifest batch in the background (``producer.expander``)."""
EXPAND_QUEUE = "expand"
"""Its own small queue, consumed by ``blurq expander`` only: never behind bulk work."""


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings derived from ours (see DESIGN.md, Queue)."""
    return {
        "broker_url": settings.broker,
        "broker_connection_retry_on_startup": True,
        "broker_use_ssl": _broker_tls(settings.broker),
        # Unacked messages come back after this long; it must exceed the hard time limit or a
        # slow image would run twice at once.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            # Queues are polled in the order a worker lists them: interactive before bulk, so a
            # deep bulk backlog never delays an interactive image by more than one task.
            "queue_order_strategy": "priority",
            # Messages of a worker that died are swept back every tenth of the visibility
            # timeout (at most 10 s); kombu's default sweep runs only every 100 s.
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        # A task that raises (its image recorded failed: workers.tasks.ImageFailed) is acked
        # like one that returns; only a worker that dies leaves its message to come back.
        "task_acks_on_failure_or_timeout": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_queues": [Queue(name) for name in (*QUEUES, WEBHOOK_QUEUE, EXPAND_QUEUE)],
        "task_default_queue": "bulk",
        "task_create_missing_queues": False,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        "worker_max_memory_per_child": 6 * 1024 * 1024,  # KiB: recycle a child past 6 GiB
    }


def send_webhook(app: Celery, batch_id: str) -> None:
    """Queue the completion webhook of a batch (the ``on_complete`` of a status store)."""
    app.send_task(WEBHOOK_TASK, args=[batch_id], queue=WEBHOOK_QUEUE)


def _broker_tls(url: str) -> dict[str, Any] | bool:
    """Verify a rediss:// broker's certificate unless the URL's ssl_cert_reqs says otherwise.

    For a bare rediss:// URL kombu would skip verification; redis-py, which the status store
    uses, verifies, and so should the broker.
    """
    if not url.startswith("rediss://") or "ssl_cert_reqs=" in url:
        return False
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def create_app(settings: Settings) -> Celery:
    """A Celery app for these settings."""
    app = Celery("blurq")
    app.conf.update(celery_config(settings))
    return app


app = create_app(get_settings())
