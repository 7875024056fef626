"""Retrying a batch's failed images: back to queued, and their messages sent again.

>>> retry(client, "shoot-42")          # every failed image of the batch
>>> retry(client, "shoot-42", image_ids=["000017"], queue="interactive")

The images are rendered exactly as the first time (the batch's parameters and output: the
output contract does not change); only the lane their messages take may be chosen anew. The
status store moves each chunk of failed images back to queued in one step and the messages of
exactly those go out before the next chunk (``infra.status.retry``), through the client's own
sender, so a retried image is one message like any other: at most once per retry, however many
retries race. A batch that had finished runs again, and its webhook is sent again at its end.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from infra.errors import InvalidJob
from infra.jobs import QUEUES, JobMessage
from infra.status.records import mapped_errors
from infra.storage import S3Uri
from infra.tenants import Tenant, qualify
from producer import quotas
from producer.client import Client
from producer.expander import INTERACTIVE_MAX


def retry(
    client: Client,
    batch_id: str,
    *,
    tenant: Tenant | None = None,
    image_ids: Sequence[str] | None = None,
    queue: str | None = None,
) -> int:
    """Send the batch's failed images (or those of image_ids) again; returns how many.

    InvalidJob when the tenant has no such batch, it was cancelled, or the queue cannot take
    them; QuotaExceeded past the tenant's submissions a minute (a retry counts as one) or when
    they would take it past its outstanding images.
    """
    tenant = tenant or client.tenant()
    quotas.count_submit(client.status_store, tenant)
    qualified = qualify(tenant.name, batch_id)
    batch = client.status_store.batch(qualified)
    if batch is None:
        raise InvalidJob(f"no batch {batch_id!r} (never submitted, or expired)")
    lane = queue or batch.queue or "bulk"
    count = batch.failed if image_ids is None else len(image_ids)
    if lane == "interactive" and count > INTERACTIVE_MAX:
        raise InvalidJob(f"the interactive queue takes up to {INTERACTIVE_MAX} images at once")
    if lane not in QUEUES:
        raise InvalidJob(f"queue must be one of {QUEUES}, got {lane!r}")
    attempt = f"retry-{secrets.token_hex(4)}"  # this retry's task ids, new to Flower

    def send(images: list[tuple[str, str]]) -> None:
        jobs = []
        for image_id, source in images:
            uri = S3Uri.parse(source)
            jobs.append(JobMessage(qualified, image_id, uri.bucket, uri.key))
        with mapped_errors():
            client.publisher.publish(lane, jobs, attempt=attempt)

    return client.status_store.retry(
        qualified,
        send,
        image_ids=image_ids,
        max_outstanding=tenant.limits.outstanding_images,
    )
