"""API-key authentication shared by the HTTP API and the dashboard.

A request carries its key as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``; the key
names a ``Principal`` (a tenant and a role) in the deployment's tenants (``infra.tenants``: the
tenants file, or single-tenant mode from ``BLURQ_API_KEYS``), loaded once per app. A missing or
unknown key is a 401; with no keys configured every request is refused, so the service never
runs open by accident. ``view`` keys may only read.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import HTTPException, Request, status

from infra.tenants import Principal, Tenants, load

KEY_REFUSED = "missing or invalid API key (send X-API-Key or Authorization: Bearer)"
"""The answer to a request without a known key (the same from the gate and the routes)."""


def request_key(request: Request) -> str:
    """The key a request presents, or an empty string."""
    return header_key(request.headers)


def header_key(headers: Mapping[str, str]) -> str:
    """The API key in X-API-Key or Authorization: Bearer, or an empty string."""
    key = headers.get("x-api-key", "")
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = credentials.strip()
    return key


def tenants(request: Request) -> Tenants:
    """The app's tenants, loaded from its settings on first use and kept on ``app.state``."""
    state = request.app.state
    found: Tenants | None = getattr(state, "tenants", None)
    if found is None:
        found = state.tenants = load(state.settings)
    return found


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal; 401 unless the request carries a known key."""
    found = tenants(request).authenticate(request_key(request))
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=KEY_REFUSED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found
