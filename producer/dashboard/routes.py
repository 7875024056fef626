"""The live batch dashboard: one page, fed by server-sent events from Redis.

Every route needs an API key: in a header (``X-API-Key`` or ``Authorization: Bearer``) or in the
HttpOnly cookie that opening ``/?key=<key>`` once sets (a browser cannot add headers to an
``EventSource``). Only the page's script and style sheet are public.

    GET  /                                   the page (a key form when not signed in)
    POST /dashboard/session                  header key -> cookie (the key form uses it)
    GET  /dashboard/batches                  the recent batches, from their records alone
    GET  /dashboard/batches/{batch}/failures failed images with their reasons, paginated
    GET  /dashboard/recent                   the most recent outputs, with thumbnail links
    GET  /dashboard/thumbnails/{batch}/{image}/{side}  JPEG preview of an input or output
    GET  /dashboard/events                   server-sent events (``producer.dashboard.events``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, StreamingResponse

from infra.errors import (
    InputMissing,
    InputTooLarge,
    StatusUnavailable,
    StorageUnavailable,
    UnsupportedImage,
)
from infra.settings import Settings
from infra.status import EVENTS_KEY, ImageState, ImageStatus, StatusStore
from producer.client import Client
from producer.dashboard import events as live
from producer.dashboard.thumbnails import Thumbnails
from producer.http.auth import key_is_valid, request_key

COOKIE = "blurq_dashboard"
"""Name of the cookie that carries the key for the page and its event stream."""
COOKIE_MAX_AGE = 7 * 24 * 3600
"""Seconds the sign-in cookie lasts."""
BATCHES_SHOWN = 100
"""Recent batches on the page (their records only are read)."""
RECENT_SCAN = 2_000
"""Newest event entries searched for recently finished images."""
STATIC = Path(__file__).with_name("static")
ASSETS = {
    "dashboard.js": "text/javascript",
    "login.js": "text/javascript",
    "dashboard.css": "text/css",
}
# The page loads nothing from elsewhere and runs no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def signed_in(request: Request) -> bool:
    """True when the request carries a valid key in a header or in the dashboard cookie."""
    key = request_key(request) or request.cookies.get(COOKIE, "")
    return key_is_valid(settings_of(request), key)


def require_viewer(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries a valid key (header or cookie)."""
    if not signed_in(request):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key (open /?key=<key> once, or send X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )


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
            max_pixels=settings.max_input_pixels,
        )
    thumbnails: Thumbnails = state.dashboard_thumbnails
    return thumbnails


router = APIRouter()
viewer = APIRouter(prefix="/dashboard", dependencies=[Depends(require_viewer)], tags=["dashboard"])


@router.get("/", include_in_schema=False)
def page(request: Request, key: str = "") -> Response:
    """The dashboard; ``?key=`` signs the browser in and redirects to drop the key from the URL."""
    if key and key_is_valid(settings_of(request), key):
        response: Response = RedirectResponse(request.url.path, status.HTTP_303_SEE_OTHER)
        _set_cookie(request, response, key)
        return response
    if key or not signed_in(request):
        body = (STATIC / "login.html").read_text()
        return HTMLResponse(body, status.HTTP_401_UNAUTHORIZED, headers=SECURITY_HEADERS)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse((STATIC / "index.html").read_text(), headers=headers)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """The page's script and style sheet."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.post("/dashboard/session", status_code=status.HTTP_204_NO_CONTENT, tags=["dashboard"])
def session(request: Request, response: Response) -> None:
    """Trade a header key for the dashboard cookie (the page's key form posts here)."""
    if not key_is_valid(settings_of(request), request_key(request)):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid API key")
    _set_cookie(request, response, request_key(request))


def _set_cookie(request: Request, response: Response, key: str) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(
        COOKIE, key, max_age=COOKIE_MAX_AGE, httponly=True, samesite="strict", secure=secure
    )


@viewer.get("/batches")
def batches(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = BATCHES_SHOWN
) -> dict[str, Any]:
    """The newest batches with counters, rate and ETA; reads batch records only, never images."""
    return live.snapshot(store_of(request), settings_of(request), limit)


@viewer.get("/batches/{batch_id}/failures")
def failures(
    request: Request,
    batch_id: str,
    cursor: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Failed images of one batch with their reasons; pass ``next`` back as cursor for more."""
    store = store_of(request)
    batch = store.batch(batch_id)
    if batch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no batch {batch_id!r}")
    found: list[ImageStatus] = []
    after: int | None = None
    if batch.failed:
        found, after = store.image_page(
            batch_id, state=ImageState.FAILED, start=cursor, limit=count
        )
    return {
        "batch": batch_id,
        "failed": batch.failed,
        "images": [_image_summary(batch_id, image) for image in found],
        "next": after,
    }


@viewer.get("/recent")
def recent(request: Request, count: Annotated[int, Query(ge=1, le=48)] = 8) -> dict[str, Any]:
    """The most recently finished outputs (newest first), found through the events stream."""
    store = store_of(request)
    seen: set[tuple[str, str]] = set()
    images: list[dict[str, Any]] = []
    try:
        entries = store.redis.xrevrange(EVENTS_KEY, count=RECENT_SCAN)
    except redis.RedisError as error:
        raise StatusUnavailable(f"Redis unavailable: {error}") from error
    for _, entry in entries:
        pair = (entry["batch"], entry["image"])
        if entry["state"] != ImageState.DONE.value or pair in seen:
            continue
        seen.add(pair)
        image = store.image(*pair)
        if image is not None and image.output:
            images.append(_image_summary(pair[0], image))
        if len(images) == count:
            break
    return {"images": images}


@viewer.get("/thumbnails/{batch_id}/{image_id}/{side}")
def thumbnail(
    request: Request, batch_id: str, image_id: str, side: Literal["input", "output"]
) -> Response:
    """A small JPEG of an image's input or output; only objects that an image record names."""
    image = store_of(request).image(batch_id, image_id)
    uri = None if image is None else (image.input if side == "input" else image.output)
    if not uri:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no {side} for that image")
    try:
        data = thumbnails_of(request).get(uri)
    except InputMissing as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error
    except (UnsupportedImage, InputTooLarge) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from error
    except StorageUnavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    headers = {"Cache-Control": "private, max-age=3600"}
    return Response(data, media_type="image/jpeg", headers=headers)


@viewer.get("/events")
async def events(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = BATCHES_SHOWN
) -> StreamingResponse:
    """Server-sent events: a snapshot, then changed batches (at most ~2/s) and heartbeats."""
    stream = live.stream(store_of(request), settings_of(request), limit)
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
