"""API-key authentication shared by the HTTP API and the dashboard.

A request is let in when it carries one of ``Settings.api_key_set`` as ``X-API-Key: <key>`` or
``Authorization: Bearer <key>``. With no keys configured every request is refused: the service
never runs open by accident.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from infra.settings import Settings


def request_key(request: Request) -> str:
    """The key a request presents, or an empty string."""
    key = request.headers.get("x-api-key", "")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = credentials.strip()
    return key


def key_is_valid(settings: Settings, key: str) -> bool:
    """True when key is one of the configured keys (compared in constant time)."""
    return bool(key) and any(
        hmac.compare_digest(key.encode(), known.encode()) for known in settings.api_key_set
    )


def require_api_key(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries a valid key."""
    settings: Settings = request.app.state.settings
    if not key_is_valid(settings, request_key(request)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid API key (send X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
