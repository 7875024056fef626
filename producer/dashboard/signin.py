"""Dashboard sign-in: who a request acts for, the sign-in form, sign-out.

A request acts for the principal of its header key (``X-API-Key`` or ``Authorization: Bearer``)
or of its session cookie (``producer.dashboard.sessions``). The form posts the key in its body
(never in the URL); both POSTs refuse pages of other sites: the cookie is ``SameSite=Strict``
and the Origin (or Referer) must be this host. The sign-in page answers 200, a refused key 401
(which ``producer.http.limits`` counts against the address).

    GET  /                   the dashboard, or the sign-in form when not signed in
    POST /dashboard/session  form field ``key`` (or a header key) -> session cookie, 303 to /
                             (or to the batch page the form was shown on: field ``next``)
    POST /dashboard/signout  ends the session, clears the cookie, 303 to /
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from infra.settings import Settings
from infra.tenants import Principal
from producer.dashboard.sessions import COOKIE, Sessions
from producer.http.auth import request_key, tenants

STATIC = Path(__file__).with_name("static")
SIGN_IN_ERROR = "<!--error-->"
"""Where login.html gets the line saying that a key was refused."""
SIGN_IN_BASE, SIGN_IN_NEXT = "<!--base-->", "<!--next-->"
"""Where login.html gets its base and the page to go back to, when shown on a batch's page."""
NEXT_PAGE = re.compile(r"batches/[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""The only pages a sign-in goes back to besides the overview (never another site)."""
# The page loads nothing from elsewhere, runs no inline script and posts forms only to itself.
# Referrer-Policy same-origin: with no-referrer a browser would send "Origin: null" on the
# page's own form posts, which the Origin check below must refuse.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none';"
    " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def sessions_of(request: Request) -> Sessions:
    """The app's dashboard sessions, in the status Redis."""
    state = request.app.state
    if getattr(state, "dashboard_sessions", None) is None:
        state.dashboard_sessions = Sessions(
            state.client.status_store.redis, settings_of(request).session_ttl
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


router = APIRouter()


@router.get("/", include_in_schema=False)
def page(request: Request) -> Response:
    """The dashboard, or the sign-in form (200) when the request is not signed in."""
    if principal_of(request) is None:
        return sign_in_page(status.HTTP_200_OK)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse((STATIC / "index.html").read_text(), headers=headers)


def sign_in_page(code: int, error: str = "", next_page: str = "") -> HTMLResponse:
    """login.html, with the reason a sign-in failed, and the batch page to go back to (whose
    address is one level down: its links need the base)."""
    line = f'<p id="error" class="error">{error}</p>' if error else ""
    body = (STATIC / "login.html").read_text().replace(SIGN_IN_ERROR, line)
    if NEXT_PAGE.fullmatch(next_page):
        body = body.replace(SIGN_IN_BASE, '<base href="../">')
        body = body.replace(SIGN_IN_NEXT, f'<input type="hidden" name="next" value="{next_page}">')
    return HTMLResponse(body, code, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


@router.post("/dashboard/session", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    """The sign-in form's key (or a header key) -> a new session in a cookie, 303 to the page."""
    if not same_origin(request):
        return sign_in_page(status.HTTP_403_FORBIDDEN, "Sign in from the dashboard's own page.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))  # at most 4 KiB: the gate
    key = (form.get("key") or [""])[0].strip() or request_key(request)
    back = (form.get("next") or [""])[0]
    back = back if NEXT_PAGE.fullmatch(back) else ""
    found = tenants(request).authenticate(key)
    if found is None:  # a 401: the gate counts it against the address
        return sign_in_page(status.HTTP_401_UNAUTHORIZED, "That key is not accepted.", back)
    session = await run_in_threadpool(sessions_of(request).open, found, key)
    response = RedirectResponse(_home(request) + back, status.HTTP_303_SEE_OTHER)
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


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings
