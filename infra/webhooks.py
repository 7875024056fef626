"""Completion webhooks: the body, its signature, and checking one (for senders and receivers).

When the last image of a batch reaches a final state, blurq POSTs ``payload(batch)`` (JSON) to the
batch's ``webhook_url`` with two headers::

    X-Blurq-Timestamp: <unix seconds>
    X-Blurq-Signature: sha256=<hex HMAC-SHA256(webhook_secret, "<timestamp>." + raw body)>

The timestamp is part of the signed content, so a captured request cannot be replayed later with
a fresh timestamp. Receivers must check both with ``verify`` (or the same few lines in their
language) on the raw body bytes before trusting the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from infra.errors import InvalidJob
from infra.status import BatchStatus

SIGNATURE_HEADER = "X-Blurq-Signature"
TIMESTAMP_HEADER = "X-Blurq-Timestamp"
TOLERANCE_S = 300
"""How old (or how far in the future) a timestamp ``verify`` accepts, in seconds."""
MAX_URL_LENGTH = 2000


def check_url(url: str) -> str:
    """The URL when it is an absolute http(s) URL with a host; InvalidJob otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_LENGTH:
        raise InvalidJob(f"webhook URL must be an absolute http(s) URL, got {url[:100]!r}")
    return url


def payload(batch: BatchStatus) -> bytes:
    """The JSON body announcing that a batch has finished."""
    body = {
        "batch_id": batch.batch_id,
        "total": batch.total,
        "done": batch.done,
        "failed": batch.failed,
        "cancelled": batch.cancelled,
        "finished_at": batch.finished_at,
        "output": batch.output,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of the HMAC-SHA256 of ``<timestamp>.<body>`` under secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers of one delivery of body: content type, timestamp and signature."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature_header: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_S,
) -> bool:
    """True when the signature matches body and timestamp, and the timestamp is recent."""
    if not secret or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
