"""The live batch dashboard: one page, fed by server-sent events from Redis.

Every route needs a principal (``producer.dashboard.signin``: a header key, or the session
cookie of the page's sign-in form; a browser cannot add headers to an ``EventSource``) and shows
only that principal's tenant: its batches, its images, its previews; another tenant's batch is a
404. Keys never travel in URLs. The dashboard only reads: a ``view`` key sees all of it and
changes nothing. Only the page itself (the sign-in form when signed out), its script and its
style sheet are public.

    GET  /, POST /dashboard/session, POST /dashboard/signout   sign-in (``signin``)
    GET  /dashboard/batches                  the recent batches, from their records alone
    GET  /dashboard/batches/{batch}/failures failed images with their reasons, paginated
    GET  /dashboard/recent                   the most recent outputs, with thumbnail links
    GET  /dashboard/thumbnails/{batch}/{image}/{side}  JPEG preview of an input or output
    GET  /dashboard/events                   server-sent events (``producer.dashboard.events``)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from infra.errors import (
    InputMissing,
    InputTooLarge,
    StatusUnavailable,
    StorageUnavailable,
    UnsupportedImage,
)
from infra.jobs import BATCH_ID
from infra.status import EVENTS_KEY, ImageState, ImageStatus, StatusStore
from infra.tenants import qualify, split
from producer.client import Client
from producer.dashboard import events as live
from producer.dashboard import signin
from producer.dashboard.signin import (
    SECURITY_HEADERS,
    STATIC,
    Viewer,
    require_viewer,
    settings_of,
)
from producer.dashboard.thumbnails import Busy, Thumbnails

BATCHES_SHOWN = 100
"""Recent batches on the page (their records only are read)."""
RECENT_SCAN = 2_000
"""Newest event entries searched for recently finished images."""
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


BatchPath = Annotated[str, PathParam(pattern=BATCH_ID)]
"""A batch id in a path: the tenant's own id, checked before Redis sees it (422)."""
ImagePath = Annotated[str, PathParam(pattern=r"^[0-9]{1,12}$")]


def store_of(request: Request) -> StatusStore:
    """The status store of the app's client."""
    client: Client = request.app.state.client
    return client.status_store


def thumbnails_of(request: Request) -> Thumbnails:
    """The app's thumbnail cache, created on first use, on the storage of the app's client."""
    state = request.app.state
    if getattr(state, "dashboard_thumbnails", None) is None:
        settings = settings_of(request)
        state.dashboard_thumbnails = Thumbnails(
            state.client.storage,
            max_bytes=settings.max_input_bytes,
            max_pixels=min(settings.max_input_pixels, settings.thumbnail_max_pixels),
            concurrency=settings.thumbnail_concurrency,
        )
    thumbnails: Thumbnails = state.dashboard_thumbnails
    return thumbnails


router = APIRouter()
router.include_router(signin.router)
viewer = APIRouter(prefix="/dashboard", dependencies=[Depends(require_viewer)], tags=["dashboard"])


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """The page's script and style sheet."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@viewer.get("/batches")
def batches(
    request: Request,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = BATCHES_SHOWN,
) -> dict[str, Any]:
    """The newest batches with counters, rate and ETA; reads batch records only, never images."""
    return live.snapshot(store_of(request), settings_of(request), limit, principal)


@viewer.get("/batches/{batch_id}/failures")
def failures(
    request: Request,
    principal: Viewer,
    batch_id: BatchPath,
    cursor: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Failed images of one batch with their reasons; pass ``next`` back as cursor for more."""
    store = store_of(request)
    qualified = qualify(principal.tenant.name, batch_id)
    batch = store.batch(qualified)
    if batch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch {batch_id!r}")
    found: list[ImageStatus] = []
    after: int | None = None
    if batch.failed:
        found, after = store.image_page(
            qualified, state=ImageState.FAILED, start=cursor, limit=count
        )
    return {
        "batch": batch_id,
        "failed": batch.failed,
        "images": [_image_summary(batch_id, image) for image in found],
        "next": after,
    }


@viewer.get("/recent")
def recent(
    request: Request, principal: Viewer, count: Annotated[int, Query(ge=1, le=48)] = 8
) -> dict[str, Any]:
    """The tenant's most recently finished outputs (newest first), found in the events stream."""
    store = store_of(request)
    seen: set[tuple[str, str]] = set()
    images: list[dict[str, Any]] = []
    try:
        entries = store.redis.xrevrange(EVENTS_KEY, count=RECENT_SCAN)
    except redis.RedisError as error:
        raise StatusUnavailable(f"Redis unavailable: {error}") from error
    for _, entry in entries:
        pair = (entry["batch"], entry["image"])
        tenant, batch_id = split(pair[0])
        if (
            entry["state"] != ImageState.DONE.value
            or pair in seen
            or tenant != principal.tenant.name
        ):
            continue
        seen.add(pair)
        image = store.image(*pair)
        if image is not None and image.output:
            images.append(_image_summary(batch_id, image))
        if len(images) == count:
            break
    return {"images": images}


@viewer.get("/thumbnails/{batch_id}/{image_id}/{side}")
def thumbnail(
    request: Request,
    principal: Viewer,
    batch_id: BatchPath,
    image_id: ImagePath,
    side: Literal["input", "output"],
) -> Response:
    """A small JPEG of an image's input or output; only objects that the tenant's records name."""
    image = store_of(request).image(qualify(principal.tenant.name, batch_id), image_id)
    uri = None if image is None else (image.input if side == "input" else image.output)
    if not uri:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {side} for that image")
    try:
        data = thumbnails_of(request).get(uri)
    except InputMissing as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error
    except (UnsupportedImage, InputTooLarge) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    except (StorageUnavailable, Busy) as error:
        headers = {"Retry-After": "2"}
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error), headers) from error
    headers = {"Cache-Control": "private, max-age=3600"}
    return Response(data, media_type="image/jpeg", headers=headers)


@viewer.get("/events")
async def events(
    request: Request,
    principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = BATCHES_SHOWN,
) -> StreamingResponse:
    """Server-sent events: a snapshot, then changed batches (at most ~2/s) and heartbeats."""
    stream = live.stream(store_of(request), settings_of(request), limit, principal)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _image_summary(batch_id: str, image: ImageStatus) -> dict[str, Any]:
    base = f"dashboard/thumbnails/{batch_id}/{image.image_id}"
    return {
        "batch": batch_id,
        "image": image.image_id,
        "input": image.input,
        "output": image.output,
        "error": image.error,
        "deliveries": image.deliveries,
        "input_thumbnail": f"{base}/input",
        "output_thumbnail": f"{base}/output" if image.output else None,
    }


router.include_router(viewer)
