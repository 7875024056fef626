"""The completion webhook sender: a Celery task on the ``webhooks`` queue.

The status store marks a batch's webhook ``pending`` in the same atomic step that finishes the
batch, and the process that made that step queues this task once. It checks the URL it reads from
Redis again (``infra.webhooks.vet``: one resolution, public addresses only unless
``webhook_allow_private``), then POSTs the payload, signed with the batch's tenant's secret, over a
connection to the very address it vetted: the Host header, TLS SNI and certificate check use the
URL's host name, so DNS cannot rebind between the check and the connection. Redirects are answers,
never followed; only http and https exist here (no urllib opener, so no file/ftp/data handlers).

Every attempt carries the notice's stable ``X-Blurq-Delivery`` id: delivery is at least once (a
lost answer is tried again; the maintenance sweep sends a notice again whose task never ran), and
receivers drop repeats by that id. Network errors, a resolver outage, 429 and 5xx answers are
retried with exponential backoff and full jitter until ``webhook_max_attempts``; any other
answer, and a refused URL, end it. A refused URL is recorded with one text whatever is behind
it, without ever connecting, so delivery status says nothing about private hosts or ports. Every
attempt is recorded on the batch record: ``webhook_attempts``, ``webhook_error`` and
``webhook_status``, which goes from ``pending`` to ``retrying`` while attempts remain, and ends
``delivered`` or ``failed``. It imports no image code
(``workers.runtime``), so a process that only sends webhooks stays small.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl

from celery import Task

from infra.celery_app import WEBHOOK_TASK, app
from infra.errors import InvalidJob
from infra.settings import Settings, get_settings
from infra.tenants import split
from infra.webhooks import Target, delivery_id, payload, secret_for, signed_headers, vet
from workers.runtime import backoff, status_store

log = logging.getLogger(__name__)


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a vetted address, whatever the host name resolves to by now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a vetted address, with SNI and the certificate checked against the host name."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self.address, self.tls = target.address, context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def deliver(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> int:
    """POST body to the vetted target; returns the HTTP status, raises OSError when none came."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        tls = context or ssl.create_default_context()  # verifies the chain and the host name
        connection = _PinnedHTTPS(target, timeout, tls)
    else:
        connection = _PinnedHTTP(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse().status  # a 3xx is the answer: never followed
    except http.client.HTTPException as error:  # a garbled answer: as good as none
        raise ConnectionError(f"bad HTTP answer: {error!r}") from error
    finally:
        connection.close()


def _attempt(
    url: str, body: bytes, secret: str, settings: Settings, delivery: str = ""
) -> tuple[str, bool]:
    """One delivery (delivery: its id): (error or "" on success, whether to retry)."""
    try:
        target = vet(
            url, allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout
        )
        headers = signed_headers(secret, url, body, delivery=delivery)
        code = deliver(target, body, headers, timeout=settings.webhook_timeout)
    except InvalidJob as error:  # refused before any connection: the same text for every host
        return str(error), False
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
    if not batch.finished:  # a retry made it run again: its new end sends the webhook anew
        return "not finished"
    if batch.webhook_status == "delivered":
        return "delivered"  # a duplicate message
    if not settings.webhook_secret:
        status.webhook_attempted(batch_id, "failed", "no webhook_secret configured on the workers")
        return "failed"
    secret = secret_for(settings.webhook_secret, split(batch.batch_id)[0])
    body, delivery = payload(batch), delivery_id(batch)
    error, retry = _attempt(batch.webhook_url, body, secret, settings, delivery)
    if not error:
        status.webhook_attempted(batch_id, "delivered")
        return "delivered"
    final = not retry or self.request.retries + 1 >= settings.webhook_max_attempts
    status.webhook_attempted(batch_id, "failed" if final else "retrying", error)
    log.warning("webhook of batch %s: %s%s", batch_id, error, "" if final else " (retrying)")
    if final:
        return "failed"
    raise self.retry(countdown=backoff(self.request.retries))
