"""The completion webhook sender: a Celery task on the ``webhooks`` queue.

The status store marks a batch's webhook ``pending`` in the same atomic step that finishes the
batch, and the process that made that step queues this task once. It POSTs the signed payload
(``infra.webhooks``). Network errors, 429 and 5xx answers are retried with exponential backoff and
full jitter until ``webhook_max_attempts``; any other answer ends it. Every attempt is recorded on
the batch record: ``webhook_attempts``, ``webhook_error`` and ``webhook_status``, which goes from
``pending`` to ``retrying`` while attempts remain, and ends ``delivered`` or ``failed``. It
imports no image code (``workers.runtime``), so a process that only sends webhooks stays small.
"""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
from typing import Any

from celery import Task

from infra.celery_app import WEBHOOK_TASK, app
from infra.settings import get_settings
from infra.webhooks import payload, signed_headers
from workers.runtime import backoff, status_store

log = logging.getLogger(__name__)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not followed: the signed body goes only where it was asked to."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def deliver(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST body to url; returns the HTTP status, raises OSError when no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except http.client.HTTPException as error:  # a garbled answer: as good as none
        raise ConnectionError(f"bad HTTP answer: {error!r}") from error


def _attempt(url: str, body: bytes, secret: str, timeout: float) -> tuple[str, bool]:
    """One delivery: (error or "" on success, whether to retry)."""
    try:
        code = deliver(url, body, signed_headers(secret, body), timeout=timeout)
    except OSError as error:
        return f"{type(error).__name__}: {error}", True
    if 200 <= code < 300:
        return "", False
    return f"HTTP {code}", code == 429 or code >= 500


@app.task(name=WEBHOOK_TASK, bind=True, max_retries=None)  # type: ignore[untyped-decorator]
def send_webhook(self: Task, batch_id: str) -> str:
    """POST a finished batch's webhook; returns delivered, failed, or why nothing was sent."""
    settings = get_settings()
    status = status_store()
    batch = status.batch(batch_id)
    if batch is None or not batch.webhook_url:
        return "no webhook"
    if batch.webhook_status == "delivered":
        return "delivered"  # a duplicate message
    if not settings.webhook_secret:
        status.webhook_attempted(batch_id, "failed", "no webhook_secret configured on the workers")
        return "failed"
    error, retry = _attempt(
        batch.webhook_url, payload(batch), settings.webhook_secret, settings.webhook_timeout
    )
    if not error:
        status.webhook_attempted(batch_id, "delivered")
        return "delivered"
    final = not retry or self.request.retries + 1 >= settings.webhook_max_attempts
    status.webhook_attempted(batch_id, "failed" if final else "retrying", error)
    log.warning("webhook of batch %s: %s%s", batch_id, error, "" if final else " (retrying)")
    if final:
        return "failed"
    raise self.retry(countdown=backoff(self.request.retries))
