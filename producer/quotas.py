"""A tenant's quotas, checked before a batch is queued: ``QuotaExceeded`` (HTTP 429) past one.

Submits per minute count in Redis per tenant per minute; outstanding images (queued or running
over all the tenant's batches) is a counter the status transitions keep (``infra.status``), so
both checks are O(1); creating the batch checks the outstanding limit again, atomically. The
images-per-batch cap is applied while inputs are expanded (``producer.inputs``).
"""

from __future__ import annotations

import time

from infra.errors import QuotaExceeded
from infra.status import OUTSTANDING_RETRY_S, StatusStore
from infra.tenants import Tenant


def count_submit(store: StatusStore, tenant: Tenant) -> None:
    """Count one submission; QuotaExceeded past the tenant's submits per minute."""
    now, limit = time.time(), tenant.limits.submits_per_minute
    if store.count_submit(tenant.name, now) > limit:
        retry = max(1, 60 - int(now % 60))  # the next minute's counter starts empty
        raise QuotaExceeded(f"more than {limit} submissions a minute", retry_after=retry)


def check_outstanding(store: StatusStore, tenant: Tenant, count: int) -> None:
    """QuotaExceeded when count more images would pass the tenant's outstanding images.

    An early answer before the inputs are written; ``StatusStore.create_batch`` checks again in
    the step that counts them, so racing submissions cannot both pass.
    """
    current, limit = store.outstanding(tenant.name), tenant.limits.outstanding_images
    if current + count > limit:
        raise QuotaExceeded(
            f"{current} images queued or running; {count} more would pass the limit of {limit}",
            retry_after=OUTSTANDING_RETRY_S,
        )
