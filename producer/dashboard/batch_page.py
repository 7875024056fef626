"""The batch page, ``/batches/{id}``, and what it reads and does.

Reading needs any principal of the batch's tenant (another tenant's batch is a 404, like an
unknown one); cancelling and retrying need a ``submit`` principal (403 for ``view``) and a
request from this site's own page (Origin or Referer; the session cookie is ``SameSite=Strict``
too), as the sign-in form does.

    GET  /batches/{batch}                          the page (the sign-in form when signed out)
    GET  /dashboard/batches/{batch}/images         a page of images: state, review, search q
    GET  /dashboard/batches/{batch}/reasons        failures grouped by reason, with counts
    GET  /dashboard/batches/{batch}/manifest       CSV or JSON lines, streamed
    POST /dashboard/batches/{batch}/cancel         cancel (``producer.client.Client.cancel``)
    POST /dashboard/batches/{batch}/retry          failed images again (``producer.retry``)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, StreamingResponse

from infra.status import BatchStatus, ImageState, ImageStatus, StatusStore
from infra.tenants import Principal, qualify
from producer.client import Client
from producer.dashboard import reasons
from producer.dashboard.signin import (
    SECURITY_HEADERS,
    STATIC,
    Viewer,
    principal_of,
    require_viewer,
    same_origin,
    sign_in_page,
)
from producer.http.manifest import Format, download
from producer.http.routes import BatchPath
from producer.http.schemas import Batch, Image
from producer.retry import retry as retry_images

IMAGES_SHOWN = 50
"""Rows of the image table per page."""

router = APIRouter()
actions = APIRouter(prefix="/dashboard", dependencies=[Depends(require_viewer)], tags=["dashboard"])


@router.get("/batches/{batch_id}", include_in_schema=False)
def batch_page(request: Request, batch_id: BatchPath) -> Response:
    """The batch page (its script reads the batch), or the sign-in form when signed out."""
    if principal_of(request) is None:
        return sign_in_page(status.HTTP_200_OK, next_page=f"batches/{batch_id}")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse((STATIC / "batch.html").read_text(), headers=headers)


def client_of(request: Request) -> Client:
    """The app's client."""
    found: Client = request.app.state.client
    return found


def found_batch(request: Request, principal: Principal, batch_id: str) -> BatchStatus:
    """The principal's batch, or 404."""
    batch = client_of(request).status_store.batch(qualify(principal.tenant.name, batch_id))
    if batch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch {batch_id!r}")
    return batch


@actions.get("/batches/{batch_id}/images")
def images(
    request: Request,
    principal: Viewer,
    batch_id: BatchPath,
    state: ImageState | None = None,
    review: bool | None = None,
    q: Annotated[str, Query(max_length=200)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = IMAGES_SHOWN,
) -> dict[str, Any]:
    """A page of the batch's images with stage times, reasons and preview links."""
    batch = found_batch(request, principal, batch_id)
    store = client_of(request).status_store
    found, after = store.image_page(
        batch.batch_id, state=state, review=review, text=q, start=offset, limit=limit
    )
    matte = bool(batch.params.get("save_matte"))
    rows = [row(batch_id, image, matte) for image in found]
    return {"images": rows, "next_offset": after}


def row(batch_id: str, image: ImageStatus, matte: bool) -> dict[str, Any]:
    """One image as the table shows it: the API's fields, its key, seconds, preview links."""
    base = f"dashboard/thumbnails/{batch_id}/{image.image_id}"
    return {
        **Image.of(image).model_dump(mode="json"),
        "key": image.input.split("/", 3)[-1],
        "seconds": round(sum(image.timings.values()), 3) if image.timings else None,
        "previews": {
            "input": f"{base}/input",
            "output": f"{base}/output" if image.output else None,
            "matte": f"{base}/matte" if image.output and matte else None,
        },
    }


@actions.get("/batches/{batch_id}/reasons")
def failure_reasons(request: Request, principal: Viewer, batch_id: BatchPath) -> dict[str, Any]:
    """The batch's failures grouped by reason, most frequent first, with their first images."""
    batch = found_batch(request, principal, batch_id)
    groups, complete = reasons.grouped(client_of(request).status_store, batch.batch_id)
    return {
        "failed": batch.failed,
        "complete": complete,
        "reasons": [
            {
                "reason": group.reason,
                "count": group.count,
                "example": group.example,
                "images": [{"image": i.image_id, "input": i.input} for i in group.images],
            }
            for group in groups
        ],
    }


@actions.get("/batches/{batch_id}/manifest")
def manifest(
    request: Request,
    principal: Viewer,
    batch_id: BatchPath,
    form: Annotated[Format, Query(alias="format")] = "csv",
    state: ImageState | None = None,
) -> StreamingResponse:
    """The batch's manifest (or its images in one state) to save."""
    batch = found_batch(request, principal, batch_id)
    store: StatusStore = client_of(request).status_store
    return download(store, batch.batch_id, form, state=state)


def changer(request: Request, principal: Viewer) -> Principal:
    """The principal, when it may change things and asks from this site's page; else 403."""
    if not principal.may_submit:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this key may only read")
    if not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="act from the dashboard's page")
    return principal


Changer = Annotated[Principal, Depends(changer)]


@actions.post("/batches/{batch_id}/cancel")
def cancel(request: Request, principal: Changer, batch_id: BatchPath) -> dict[str, Any]:
    """Cancel the batch: queued images end cancelled, running ones finish."""
    current = found_batch(request, principal, batch_id)
    if current.finished:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="the batch has already finished")
    batch = client_of(request).cancel(batch_id, tenant=principal.tenant.name)
    return Batch.of(batch).model_dump(mode="json")


@actions.post("/batches/{batch_id}/retry")
def retry(request: Request, principal: Changer, batch_id: BatchPath) -> dict[str, Any]:
    """Send the batch's failed images again; the batch after, with how many (as the API)."""
    current = found_batch(request, principal, batch_id)
    if current.cancel_requested:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="the batch was cancelled")
    count = retry_images(client_of(request), batch_id, tenant=principal.tenant)
    after = found_batch(request, principal, batch_id)
    return {**Batch.of(after).model_dump(mode="json"), "retried": count}


router.include_router(actions)
