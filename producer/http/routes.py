"""The JSON API under ``/v1``: submit, list, read, page through images, cancel.

Every route needs an API key (``producer.http.auth``) and acts for the key's tenant: batch ids
are the tenant's own, and another tenant's batch answers exactly like an unknown one. A batch of
URIs is made whole before the answer (201); a prefix or a manifest is listed in the background by
an expander (``producer.expander``): 202 at once, the batch ``expanding``, and a refusal found
while listing (the images-per-batch cap, the outstanding quota, a line outside the tenant's
prefixes) fails the batch as a whole, with the reason in its ``error``. A manifest of any length
comes as the ``s3://`` URI of a manifest object, which the expander streams from S3: request
bodies stay within the gate's limit (``producer.http.limits``). Errors
are ``{"error": {"code", "message"}}``: 401 no or bad key, 403 a ``view`` key that tries to
change something or a place outside the tenant's S3 prefixes, 404 unknown batch, 409 an
idempotency key reused for a different batch or a cancel of a finished batch, 422 malformed
input (path ids included, checked before Redis), 429 a tenant quota (with Retry-After), 503 when
Redis or S3 cannot be reached. Routes are plain functions: FastAPI runs them in its thread pool, so
blocking Redis and S3 calls never stall the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from infra.errors import (
    BatchConflict,
    BlurqError,
    Forbidden,
    InputMissing,
    QuotaExceeded,
    TransientError,
)
from infra.jobs import BATCH_ID, BlurParams
from infra.status import BatchStatus, ImageState
from infra.tenants import Principal, qualify
from producer.client import Client
from producer.http.auth import principal
from producer.http.schemas import Batch, BatchPage, BatchRequest, Error, Image, ImagePage

_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")


def caller(
    request: Request,
    _header: Annotated[str | None, Security(_key_header)],
    _token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The key check; the two Security parameters only put the schemes in the OpenAPI document."""
    return principal(request)


ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Error} for code in (401, 403, 404, 409, 422, 429, 503)
}
router = APIRouter(prefix="/v1", responses=ERRORS)
Caller = Annotated[Principal, Depends(caller)]


def writer(who: Caller) -> Principal:
    """The caller, when its key may change things (role submit); 403 for a view key."""
    if not who.may_submit:
        raise HTTPException(403, "this key may only read (its role is view)")
    return who


Writer = Annotated[Principal, Depends(writer)]
BatchPath = Annotated[str, Path(pattern=BATCH_ID, description="The batch id (its tenant's own).")]


class ApiError(Exception):
    """Raised by a route to answer with an error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def client(request: Request) -> Client:
    """The app's Client (one per app: its Redis pool and S3 client are shared)."""
    found: Client = request.app.state.client
    return found


Api = Annotated[Client, Depends(client)]


def _batch(api: Client, who: Principal, batch_id: str) -> BatchStatus:
    found = api.status_store.batch(qualify(who.tenant.name, batch_id))
    if found is None:
        raise ApiError(
            404, "batch_not_found", f"no batch {batch_id!r} (never submitted, or expired)"
        )
    return found


@router.post("/batches", status_code=201, response_model=Batch, responses={202: {"model": Batch}})
def submit(
    body: BatchRequest,
    response: Response,
    api: Api,
    who: Writer,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> Batch:
    """Submit a batch; 201 when created (URIs), 202 when created and being listed (a prefix or
    a manifest: state expanding), 200 when the same key named an existing batch."""
    if body.webhook_url and not api.settings.webhook_secret:
        raise ApiError(422, "webhooks_disabled", "webhooks need BLURQ_WEBHOOK_SECRET on the API")
    batch_id = _idempotency(body.batch_id, idempotency_key)
    params = BlurParams(**body.params.model_dump())
    submission = api.submit_batch(
        output=body.output,
        uris=body.uris,
        prefix=body.prefix,
        manifest=body.manifest,
        params=params,
        batch_id=batch_id,
        queue=body.queue,
        webhook_url=body.webhook_url,
        tenant=who.tenant,
        background=True,
    )
    listed = body.uris is None
    response.status_code = (202 if listed else 201) if submission.created else 200
    response.headers["Location"] = f"/v1/batches/{submission.batch_id}"
    return Batch.of(_batch(api, who, submission.batch_id))


def _idempotency(batch_id: str | None, header: str | None) -> str | None:
    if header is not None and batch_id is not None and header != batch_id:
        raise ApiError(422, "idempotency_mismatch", "Idempotency-Key and batch_id differ")
    return batch_id or header


@router.get("/batches", response_model=BatchPage)
def list_batches(
    api: Api,
    who: Caller,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> BatchPage:
    """The tenant's recent batches, newest first."""
    found = api.status_store.recent_batches(limit, start=offset, tenant=who.tenant.name)
    return BatchPage(
        batches=[Batch.of(batch) for batch in found],
        next_offset=offset + limit if len(found) == limit else None,
    )


@router.get("/batches/{batch_id}", response_model=Batch)
def batch(batch_id: BatchPath, api: Api, who: Caller) -> Batch:
    """A batch's counts per state, rate, ETA, parameters and times."""
    return Batch.of(_batch(api, who, batch_id))


@router.get("/batches/{batch_id}/images", response_model=ImagePage)
def images(
    batch_id: BatchPath,
    api: Api,
    who: Caller,
    state: ImageState | None = None,
    offset: Annotated[int, Query(ge=0, description="Position in the batch's image list.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    review: Annotated[
        bool | None, Query(description="true: only images whose matte needs a person's look.")
    ] = None,
    q: Annotated[str, Query(max_length=200, description="A piece of the input key.")] = "",
) -> ImagePage:
    """A batch's images in submission order, with reasons and outputs; optionally only those in
    one state, flagged for review, or whose input key contains q (any case)."""
    found_batch = _batch(api, who, batch_id)
    found, next_offset = api.status_store.image_page(
        found_batch.batch_id, state=state, start=offset, limit=limit, review=review, text=q
    )
    return ImagePage(images=[Image.of(image) for image in found], next_offset=next_offset)


@router.post("/batches/{batch_id}/cancel", response_model=Batch)
def cancel(batch_id: BatchPath, api: Api, who: Writer) -> Batch:
    """Cancel: queued images end ``cancelled`` (never run); running ones finish."""
    current = _batch(api, who, batch_id)
    if current.finished and not current.cancel_requested:
        raise ApiError(409, "batch_finished", f"batch {batch_id!r} has already finished")
    return Batch.of(api.cancel(batch_id, tenant=who.tenant.name))


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def install(app: FastAPI) -> None:
    """Add the API's routes and its error answers to app (other paths keep FastAPI's)."""
    app.include_router(router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.code, error.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if not request.url.path.startswith("/v1"):
            return await http_exception_handler(request, error)
        code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        return _error(error.status_code, code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        if not request.url.path.startswith("/v1"):
            return await request_validation_exception_handler(request, error)
        problems = "; ".join(_problem(item) for item in error.errors())
        return _error(422, "invalid_request", problems)

    @app.exception_handler(BlurqError)
    async def blurq_error(request: Request, error: BlurqError) -> JSONResponse:
        if isinstance(error, TransientError):
            return _error(503, "unavailable", str(error), {"Retry-After": "5"})
        if isinstance(error, BatchConflict):
            return _error(409, "idempotency_conflict", str(error))
        if isinstance(error, Forbidden):
            return _error(403, "forbidden", str(error))
        if isinstance(error, QuotaExceeded):
            wait = {"Retry-After": str(error.retry_after)}
            return _error(429, "quota_exceeded", str(error), wait)
        code = "input_missing" if isinstance(error, InputMissing) else "invalid_input"
        return _error(422, code, str(error))


def _problem(item: dict[str, object]) -> str:
    where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))
