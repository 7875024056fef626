"""The JSON shapes of the HTTP API (pydantic models; they are the OpenAPI document's schemas)."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from infra.jobs import BATCH_ID
from infra.params import BlurParams, limit
from infra.status import BatchStatus, ImageStatus, progress
from infra.tenants import split
from infra.webhooks import check_form


def _s3(uri: str) -> str:
    # The API reads inputs only from S3 with its own credentials: it never fetches a URL.
    if not uri.startswith("s3://") or len(uri) <= len("s3://") or uri[5] == "/":
        raise ValueError("must be an s3://bucket/key URI (the API fetches no other URLs)")
    return uri


def _http(url: str) -> str:
    try:
        return check_form(url)  # the host is resolved by the client, off the event loop
    except Exception as error:  # InvalidJob: pydantic reports ValueErrors only
        raise ValueError(str(error)) from error


S3Uri = Annotated[
    str, Field(max_length=2048, examples=["s3://shop/products/"]), AfterValidator(_s3)
]
BatchId = Annotated[str, Field(pattern=BATCH_ID)]


def _param_fields() -> dict[str, Any]:
    """BlurParams' fields as pydantic fields: the same types, defaults, limits and help."""
    types = get_type_hints(BlurParams)
    found: dict[str, Any] = {}
    for param in fields(BlurParams):
        spec = limit(param)
        kind = Literal.__getitem__(spec.choices) if spec.choices else types[param.name]
        description = spec.help + (f" Null means {spec.none!r}." if spec.none else "")
        found[param.name] = (
            kind,
            Field(
                param.default,
                ge=spec.low,
                le=spec.high,
                pattern=spec.pattern,
                description=description,
            ),
        )
    return found


Params = create_model(
    "Params",
    __config__=ConfigDict(extra="forbid"),
    __doc__="How to render, the same for every image of the batch (``infra.params.BlurParams``).",
    **_param_fields(),
)


class BatchRequest(BaseModel):
    """A batch to submit: exactly one of uris, prefix or manifest, and where the results go."""

    model_config = ConfigDict(extra="forbid")

    output: S3Uri
    uris: list[S3Uri] | None = Field(None, min_length=1, max_length=100_000)
    prefix: S3Uri | None = None
    manifest: S3Uri | None = None
    params: Params = Field(default_factory=Params)
    queue: Literal["interactive", "bulk"] | None = None  # infra.jobs.QUEUES (a test checks)
    batch_id: BatchId | None = Field(None, description="Idempotency key: same id, same batch.")
    webhook_url: Annotated[str, AfterValidator(_http)] | None = Field(
        None, description="POSTed a signed JSON body when the batch ends."
    )

    @model_validator(mode="after")
    def _one_input_kind(self) -> BatchRequest:
        if sum(value is not None for value in (self.uris, self.prefix, self.manifest)) != 1:
            raise ValueError("give exactly one of uris, prefix or manifest")
        return self


class Counts(BaseModel):
    """Images per state; they always add up to the batch's total."""

    queued: int
    running: int
    done: int
    failed: int
    cancelled: int


class Webhook(BaseModel):
    """The completion webhook: its status and how many times it was tried."""

    status: str = Field(
        description="waiting (the batch is running), pending (due to be sent), retrying (an "
        "attempt failed, another is due), delivered or failed (no attempt left)."
    )
    attempts: int


class Batch(BaseModel):
    """A batch's progress, parameters and times (unix seconds)."""

    batch_id: str
    state: Literal["expanding", "queued", "running", "finished", "cancelled", "failed"] = Field(
        description="expanding: its prefix or manifest is still being listed (total is what was "
        "found so far); failed: it failed as a whole, see error (infra.status.progress.state)."
    )
    error: str = Field("", description="Why the batch failed as a whole (its expansion).")
    total: int
    counts: Counts
    finished: bool
    cancelled: bool = Field(description="True once a cancel was asked for.")
    rate: float = Field(
        description="Images processed per second: done ones and failures that took some work "
        "(instant ones are left out), over the last minute while the batch runs and counted "
        "from its first processed image; its average once finished (infra.status.progress)."
    )
    estimating: bool = Field(
        False, description="True while the rate rests on too few images or seconds for an ETA."
    )
    eta_seconds: float | None
    review: int = Field(
        0, description="Done images whose matte is in doubt (a person should look)."
    )
    params: dict[str, Any]
    output: str
    queue: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    webhook: Webhook | None

    @classmethod
    def of(cls, batch: BatchStatus) -> Batch:
        """The view of a batch record, its rate and ETA as the CLI shows them."""
        eta = progress.eta_seconds(batch)
        return cls(
            batch_id=split(batch.batch_id)[1],  # the tenant's own id
            state=progress.state(batch),
            error=batch.error,
            total=batch.total,
            counts=Counts(
                queued=batch.queued,
                running=batch.running,
                done=batch.done,
                failed=batch.failed,
                cancelled=batch.cancelled,
            ),
            finished=batch.finished,
            cancelled=batch.cancel_requested,
            rate=round(progress.rate(batch), 4),
            estimating=progress.estimating(batch),
            eta_seconds=None if eta is None else round(eta, 1),
            review=batch.review,
            params=batch.params,
            output=batch.output,
            queue=batch.queue,
            created_at=batch.created_at,
            started_at=batch.started_at,
            finished_at=batch.finished_at,
            webhook=Webhook(
                status=batch.webhook_status or "waiting", attempts=batch.webhook_attempts
            )
            if batch.webhook_url
            else None,
        )


class BatchPage(BaseModel):
    """Recent batches, newest first."""

    batches: list[Batch]
    next_offset: int | None


class Image(BaseModel):
    """One image: state, the reason it failed, where its output is, seconds per stage."""

    image_id: str
    input: str
    state: str
    error: str
    output: str
    deliveries: int
    stage: str
    timings: dict[str, float]
    started_at: float | None
    finished_at: float | None
    retried: int = Field(0, description="Times it was sent again after it failed (retry).")
    confidence: float | None = Field(
        None, description="How sure its matte is, 0..1 (null: unknown)."
    )
    review: bool | None = Field(
        None, description="True when its matte is in doubt (null: unknown)."
    )

    @classmethod
    def of(cls, image: ImageStatus) -> Image:
        """The view of an image record."""
        return cls(
            image_id=image.image_id,
            input=image.input,
            state=image.state.value,
            error=image.error,
            output=image.output,
            deliveries=image.deliveries,
            stage=image.stage,
            timings=image.timings,
            started_at=image.started_at,
            finished_at=image.finished_at,
            retried=image.retried,
            confidence=image.confidence,
            review=image.review,
        )


class ImagePage(BaseModel):
    """A page of a batch's images; next_offset continues the scan (null at the end)."""

    images: list[Image]
    next_offset: int | None


class ErrorBody(BaseModel):
    """What went wrong: a stable code and a sentence."""

    code: str
    message: str


class Error(BaseModel):
    """Every error answer of the API."""

    error: ErrorBody
