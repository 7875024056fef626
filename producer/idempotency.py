"""Idempotent submission: the digest that names a request, and the check that a batch id is reused
only for the same request.

A batch id is an idempotency key: submitting it again with the same request answers with the
batch that exists and sends nothing; with another request (other inputs, output, parameters or
webhook) it is a ``BatchConflict`` (the API's 409). The digest is stored with the batch when it
is created, in the same atomic step that claims the id (``StatusStore.create_batch``), so two
racing submissions of different requests give one batch and one conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from infra.errors import BatchConflict
from infra.params import BlurParams
from infra.status import BatchStatus
from infra.storage import S3Uri
from infra.tenants import split


def request_digest(
    *,
    output: S3Uri,
    uris: Sequence[str] | None,
    prefix: str | None,
    manifest: str | None,
    params: BlurParams,
    webhook_url: str | None,
) -> str:
    """SHA-256 of the request as given (a prefix or manifest by its name, not its listing)."""
    request = {
        "output": str(output),
        "uris": list(uris) if uris is not None else None,
        "prefix": prefix,
        "manifest": manifest,
        "params": params.fingerprint(),
        "webhook_url": webhook_url,
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def check_same(
    existing: BatchStatus | None, digest: str, output: S3Uri, params: BlurParams
) -> BatchStatus | None:
    """The existing batch (or None); BatchConflict when it was made by another request.

    Batches recorded before digests were stored are compared by output and parameters.
    """
    if existing is None:
        return None
    if existing.request_digest:
        same = existing.request_digest == digest
    else:
        same = existing.output == str(output) and BlurParams.from_dict(existing.params) == params
    if not same:
        own = split(existing.batch_id)[1]
        raise BatchConflict(
            f"batch {own!r} exists with other inputs, output, parameters or webhook"
        )
    return existing
