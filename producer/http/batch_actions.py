"""What a person does to a batch besides cancelling it: send its failed images again.

    POST /v1/batches/{id}/retry   {"images": [...], "queue": "..."} both optional -> Retried
                                  (the batch as GET /v1/batches/{id} shows it, and "retried")

Failed images go back to queued and their messages are sent again (``producer.retry``); the
counters move with them, a finished batch runs again and its webhook is sent again at its new
end. The images are rendered as the first time: only the lane may be chosen anew, nothing that
would change an output. 403 for a ``view`` key, 404 for an unknown batch, 409 for a cancelled
one, 429 past the tenant's outstanding images.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from producer.http.routes import ERRORS, Api, ApiError, BatchPath, Writer, _batch
from producer.http.schemas import Batch
from producer.retry import retry as retry_images

router = APIRouter(prefix="/v1", responses=ERRORS)
IMAGE_ID = r"^[0-9]{1,12}$"
"""An image id as the producer numbers them."""


class RetryRequest(BaseModel):
    """Which failed images to send again (default: all of them) and on which lane."""

    model_config = ConfigDict(extra="forbid")

    images: list[Annotated[str, Field(pattern=IMAGE_ID)]] | None = Field(
        None, min_length=1, max_length=10_000, description="Image ids; only failed ones move."
    )
    queue: Literal["interactive", "bulk"] | None = Field(
        None, description="The lane of the new messages (default: the batch's)."
    )


class Retried(Batch):
    """The batch after the retry, as cancel answers it, and how many images went back to queued."""

    retried: int = Field(description="Failed images sent again by this request.")


@router.post("/batches/{batch_id}/retry", response_model=Retried)
def retry(batch_id: BatchPath, api: Api, who: Writer, body: RetryRequest | None = None) -> Retried:
    """Send the batch's failed images again; 0 retried when none had failed."""
    current = _batch(api, who, batch_id)
    if current.cancel_requested:
        raise ApiError(409, "batch_cancelled", f"batch {batch_id!r} was cancelled")
    asked = body or RetryRequest()
    count = retry_images(
        api, batch_id, tenant=who.tenant, image_ids=asked.images, queue=asked.queue
    )
    return Retried(**Batch.of(_batch(api, who, batch_id)).model_dump(), retried=count)
