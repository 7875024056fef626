"""The live batch dashboard: one page, fed by server-sent events from Redis.

Every route needs a principal: a key in a header (``X-API-Key`` or ``Authorization: Bearer``) or
a session from the page's sign-in form (``producer.dashboard.sessions``: an opaque id in an
HttpOnly, SameSite=Strict cookie; a browser cannot add headers to an ``EventSource``). Keys never
travel in URLs. The dashboard only reads: a ``view`` key sees all of it and changes nothing. Only
the page itself (the sign-in form when signed out, answered 200), its script and its style sheet
are public. The two POSTs refuse another site's pages (Origin/Referer check).

    GET  /                                   the page (the sign-in form when not signed in)
    POST /dashboard/session                  form field ``key`` -> session cookie, 303 to /
    POST /dashboard/signout                  ends the session, clears the cookie, 303 to /
    GET  /dashboard/batches                  the recent batches, from their records alone
    GET  /dashboard/batches/{batch}/failures failed images with their reasons, paginated
    GET  /dashboard/recent                   the most recent outputs, with thumbnail links
    GET  /dashboard/thumbnails/{batch}/{image}/{side}  JPEG preview of an input or output
    GET  /dashboard/events                   server-sent events (``producer.dashboard.events``)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
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
from infra.tenants import Principal
from producer.client import Client
from producer.dashboard import events as live
from producer.dashboard.sessions import COOKIE, Sessions
from producer.dashboard.thumbnails import Busy, Thumbnails
from producer.http.auth import request_key, tenants

BATCHES_SHOWN = 100
"""Recent batches on the page (their records only are read)."""
RECENT_SCAN = 2_000
"""Newest event entries searched for recently finished images."""
STATIC = Path(__file__).with_name("static")
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
SIGN_IN_ERROR = "<!--error-->"
"""Where login.html gets the line saying that a key was refused."""
# The page loads nothing from elsewhere, runs no inline script and posts forms only to itself.
# Referrer-Policy same-origin: with no-referrer a browser would send "Origin: null" on the
# page's own form posts, which the Origin check below must refuse.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none';"
    " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def sessions_of(request: Request) -> Sessions:
    """The app's dashboard sessions, in the status Redis."""
    state = request.app.state
    if getattr(state, "dashboard_sessions", None) is None:
        state.dashboard_sessions = Sessions(
            store_of(request).redis, settings_of(request).session_ttl
        )
    sessions: Sessions = state.dashboard_sessions
    return sessions


def principal_of(request: Request) -> Principal | None:
    """Who the request acts for: its header key, else its session cookie; None when neither."""
    key = request_key(request)
    if key:
        return tenants(request).authenticate(key)
    return sessions_of(request).principal(request.cookies.get(COOKIE, ""), tenants(request))


def require_viewer(request: Request) -> Principal:
    """FastAPI dependency: the principal, or 401 (sign in on the page, or send X-API-Key)."""
    found = principal_of(request)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="not signed in (sign in on the dashboard page, or send X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


Viewer = Annotated[Principal, Depends(require_viewer)]


def same_origin(request: Request) -> bool:
    """False when a browser says the request comes from another site's page.

    Browsers send Origin on every POST (Referer as a fallback); a request with neither comes
    from no browser page, so no cross-site forgery can ride on it.
    """
    host = request.headers.get("host", "")
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is not None:
            return value != "null" and urlsplit(value).netloc == host
    return True


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
viewer = APIRouter(prefix="/dashboard", dependencies=[Depends(require_viewer)], tags=["dashboard"])


@router.get("/", include_in_schema=False)
def page(request: Request) -> Response:
    """The dashboard, or the sign-in form (200) when the request is not signed in."""
    if principal_of(request) is None:
        return sign_in_page(status.HTTP_200_OK)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse((STATIC / "index.html").read_text(), headers=headers)


def sign_in_page(code: int, error: str = "") -> HTMLResponse:
    """login.html, with the reason a sign-in failed."""
    line = f'<p id="error" class="error">{error}</p>' if error else ""
    body = (STATIC / "login.html").read_text().replace(SIGN_IN_ERROR, line)
    return HTMLResponse(body, code, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.get("/dashboard/static/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    """The page's script and style sheet."""
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=SECURITY_HEADERS)


@router.post("/dashboard/session", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    """The sign-in form's key (or a header key) -> a new session in a cookie, 303 to the page."""
    if not same_origin(request):
        return sign_in_page(status.HTTP_403_FORBIDDEN, "Sign in from the dashboard's own page.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))  # at most 4 KiB: the gate
    key = (form.get("key") or [""])[0].strip() or request_key(request)
    found = tenants(request).authenticate(key)
    if found is None:  # a 401: the gate counts it against the address
        return sign_in_page(status.HTTP_401_UNAUTHORIZED, "That key is not accepted.")
    session = await run_in_threadpool(sessions_of(request).open, found, key)
    response = RedirectResponse(_home(request), status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        session,
        max_age=settings_of(request).session_ttl,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/dashboard/signout", include_in_schema=False)
def sign_out(request: Request) -> Response:
    """End the session (server side: the cookie's id is worth nothing after), 303 to the page."""
    if not same_origin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="sign out from the dashboard")
    sessions_of(request).close(request.cookies.get(COOKIE, ""))
    response = RedirectResponse(_home(request), status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


def _home(request: Request) -> str:
    return str(request.scope.get("root_path", "")) + "/"


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
