"""The live batch dashboard: two pages (the overview and a batch's page, ``batch_page``), fed
by server-sent events from Redis.

Every route needs a principal (``producer.dashboard.signin``: a header key, or the session
cookie of the page's sign-in form; a browser cannot add headers to an ``EventSource``) and shows
only that principal's tenant: its batches, its images, its previews; another tenant's batch is a
404. Keys never travel in URLs. A ``view`` key reads everything and changes nothing; cancel and
retry (``batch_page``) need a ``submit`` key. Only the pages themselves (the sign-in form when
signed out), their scripts and their style sheet are public.

    GET  /, POST /dashboard/session, POST /dashboard/signout   sign-in (``signin``)
    GET  /batches/{batch} and its reads and actions            the batch page (``batch_page``)
    GET  /dashboard/batches                  a page of batches (filters: outcome, id), from
                                             their records alone
    GET  /dashboard/fleet                    queues, workers, images per minute (``/v1/fleet``)
    GET  /dashboard/thumbnails/{batch}/{image}/{side}  JPEG preview of an input, output or
                                             saved matte, small or large (the viewer's)
    GET  /dashboard/events                   server-sent events (``producer.dashboard.events``)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse

from infra.errors import InputMissing, InputTooLarge, StorageUnavailable, UnsupportedImage
from infra.jobs import BATCH_ID, matte_key
from infra.status import StatusStore
from infra.tenants import qualify
from producer.client import Client
from producer.dashboard import batch_page, listing, signin
from producer.dashboard import events as live
from producer.dashboard.signin import (
    SECURITY_HEADERS,
    STATIC,
    Viewer,
    require_viewer,
    settings_of,
)
from producer.dashboard.thumbnails import Busy, Thumbnails
from producer.http.fleet import view_of
from producer.http.routes import BatchPath

BATCHES_SHOWN = 25
"""Batches per page of the overview's table (their records only are read)."""
ASSETS = {
    name: "text/javascript" for name in ("common.js", "overview.js", "batch.js", "viewer.js")
} | {"dashboard.css": "text/css"}
SIZES = {"small": (160, 512), "large": (1280, 48)}
"""Preview sizes: long side in pixels, previews kept in memory (a large one is ~150 kB)."""
ImagePath = Annotated[str, PathParam(pattern=r"^[0-9]{1,12}$")]


def store_of(request: Request) -> StatusStore:
    """The status store of the app's client."""
    client: Client = request.app.state.client
    return client.status_store


def thumbnails_of(request: Request, size: str) -> Thumbnails:
    """The app's preview cache of one size, created on first use on the client's storage."""
    state = request.app.state
    if getattr(state, "dashboard_thumbnails", None) is None:
        state.dashboard_thumbnails = {}
    caches: dict[str, Thumbnails] = state.dashboard_thumbnails
    if size not in caches:
        settings = settings_of(request)
        side, entries = SIZES[size]
        caches[size] = Thumbnails(
            state.client.storage,
            max_bytes=settings.max_input_bytes,
            max_pixels=min(settings.max_input_pixels, settings.thumbnail_max_pixels),
            concurrency=settings.thumbnail_concurrency,
            size=side,
            entries=entries,
        )
    return caches[size]


router = APIRouter()
router.include_router(signin.router)
router.include_router(batch_page.router)
viewer = APIRouter(prefix="/dashboard", dependencies=[Depends(require_viewer)], tags=["dashboard"])


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """The pages' scripts and style sheet."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@viewer.get("/batches")
def batches(
    request: Request,
    principal: Viewer,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = BATCHES_SHOWN,
    state: listing.Outcome | None = None,
    q: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:
    """A page of batches, newest first, with counters, rate and ETA, and the tenant's summary
    (its active batches, its images queued or running); reads batch records only."""
    found, after = listing.page(
        store_of(request),
        principal.tenant.name,
        offset=offset,
        limit=limit,
        outcome=state,
        text=q,
    )
    answer = live.signed_in(settings_of(request), principal)
    summary = store_of(request).tenant_summary(principal.tenant.name)  # every batch, two counters
    return {**answer, "batches": live.summaries(found), "next_offset": after, "summary": summary}


@viewer.get("/fleet")
def fleet(request: Request, principal: Viewer) -> dict[str, Any]:
    """Queue depth per lane, workers online and busy, the tenant's images per minute."""
    return view_of(request).answer(principal).model_dump(mode="json")


@viewer.get("/thumbnails/{batch_id}/{image_id}/{side}")
def thumbnail(
    request: Request,
    principal: Viewer,
    batch_id: BatchPath,
    image_id: ImagePath,
    side: Literal["input", "output", "matte"],
    size: Literal["small", "large"] = "small",
) -> Response:
    """A JPEG of an image's input, output or saved matte; only objects its record names."""
    image = store_of(request).image(qualify(principal.tenant.name, batch_id), image_id)
    found = {"input": image.input, "output": image.output} if image else {}
    if found.get("output"):
        found["matte"] = matte_key(found["output"])  # saved beside the output, if asked for
    uri = found.get(side)
    if not uri:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {side} for that image")
    try:
        data = thumbnails_of(request, size).get(uri)
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
    batch: Annotated[str | None, Query(pattern=BATCH_ID)] = None,
) -> StreamingResponse:
    """Server-sent events: a snapshot, then changed batches (at most ~2/s) and heartbeats; of
    one batch only when ``batch`` names it."""
    only = None if batch is None else qualify(principal.tenant.name, batch)
    stream = live.stream(store_of(request), settings_of(request), limit, principal, only)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


router.include_router(viewer)
