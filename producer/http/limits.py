"""The gate in front of the app: keys, body sizes and failed-key throttling, before any body.

``RequestGate`` is a pure ASGI middleware (it sees the request's headers before the app reads a
byte of its body). In order:

1. An address with ``auth_failures_per_minute`` failed authentications within the last minute
   gets ``429`` with ``Retry-After`` for every request until that minute is over. A failure is any
   ``401`` answer, the gate's own or the app's (API keys, dashboard sign-in), counted per address
   in Redis with a 60-second TTL, so that every API replica behind one balancer agrees and a
   restart does not reset an attacker's count. When Redis cannot be reached the gate lets
   requests through (keys are still checked; the app answers 503 for most things anyway).
2. A request with a body (POST, PUT, PATCH) to ``/v1`` must carry a valid key in its headers
   (``X-API-Key`` or ``Authorization: Bearer``), else ``401`` without reading the body.
3. Then ``Content-Length`` above ``max_request_bytes`` (the dashboard's sign-in form: 4 KiB) is
   ``413`` without reading; a chunked body is counted as the app reads it and cut at the cap
   with ``413``.

The client address is the one uvicorn reports: behind a reverse proxy, run ``blurq api`` with
uvicorn's proxy headers trusted for that proxy only, or every caller shares one address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from infra.settings import Settings
from infra.tenants import Tenants
from producer.http.auth import KEY_REFUSED, header_key

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SIGN_IN_PATH = "/dashboard/session"
"""The dashboard's sign-in form: its key comes in the body, so it gets a small cap instead."""
SIGN_IN_MAX_BYTES = 4096
FAILURES_KEY = "blurq:auth-failures:"
"""Redis key prefix of the failed-authentication count of one client address."""
WINDOW_S = 60
"""Seconds over which failed authentications are counted."""
log = logging.getLogger(__name__)


class Throttle:
    """Failed authentications per client address, counted in Redis over a fixed window."""

    def __init__(self, redis_url: str, limit: int) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.limit = limit

    async def retry_after(self, address: str) -> int:
        """Seconds until address may try again; 0 when it may now."""
        key = FAILURES_KEY + address
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                count, ttl = await pipe.execute()
        except RedisError as error:
            log.warning("failed-key throttle unavailable, letting requests through: %s", error)
            return 0
        return max(int(ttl), 1) if int(count or 0) >= self.limit else 0

    async def failed(self, address: str) -> None:
        """Count one failed authentication of address."""
        key = FAILURES_KEY + address
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                # NX: the window starts at the first failure and is not stretched by later ones.
                pipe.expire(key, WINDOW_S, nx=True)
                await pipe.execute()
        except RedisError as error:
            log.warning("failed-key throttle unavailable: %s", error)


class RequestGate:
    """The ASGI middleware described above; install it with ``app.add_middleware``."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.max_request_bytes
        self.throttle = Throttle(settings.redis_url, settings.auth_failures_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        wait = await self.throttle.retry_after(address)
        if wait:
            message = f"too many failed keys from {address}; try again in {wait} s"
            await answer(send, 429, "too_many_failures", message, {"retry-after": str(wait)})
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await answer(send, *refusal)
            if refusal[0] == 401:
                await self.throttle.failed(address)
            return
        await self.app(scope, *self._capped(scope, receive, send, address))

    def _closing(self, receive: Receive) -> Receive:
        """receive of the lifespan scope, closing the throttle's connections at shutdown."""

        async def closing() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.throttle.redis.aclose()
            return message

        return closing

    def _refusal(self, scope: Scope) -> tuple[int, str, str, dict[str, str]] | None:
        """Why a request is answered before its body is read, or None to let it in."""
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        # The key first: a caller without one learns nothing, not even the size limit.
        if scope["method"] in BODY_METHODS and scope["path"].startswith("/v1"):
            tenants: Tenants = scope["app"].state.tenants
            if tenants.authenticate(header_key(headers)) is None:
                message = KEY_REFUSED
                return 401, "unauthorized", message, {"www-authenticate": "Bearer"}
        length = headers.get("content-length", "")
        if length and not length.isdigit():
            return 400, "bad_request", "Content-Length is not a number", {}
        if length and int(length) > self._cap(scope):
            return 413, "too_large", f"request bodies are limited to {self._cap(scope)} bytes", {}
        return None

    def _cap(self, scope: Scope) -> int:
        if scope["path"] == SIGN_IN_PATH:
            return min(SIGN_IN_MAX_BYTES, self.max_bytes)
        return self.max_bytes

    def _capped(
        self, scope: Scope, receive: Receive, send: Send, address: str
    ) -> tuple[Receive, Send]:
        """receive cut at the cap (413 sent, the app told the client left); send counts 401s."""
        cap, state = self._cap(scope), {"read": 0, "started": False, "answered": False}

        async def capped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > cap:
                    if not state["started"]:
                        await answer(
                            send, 413, "too_large", f"request bodies are limited to {cap} bytes"
                        )
                    state["answered"] = True
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            if state["answered"]:
                return  # the 413 went out; what the app says after the cut is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                if message["status"] == 401:
                    await self.throttle.failed(address)
            await send(message)

        return capped_receive, watched_send


async def answer(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """A JSON error answer in the API's shape, closing the connection (a body may be unread)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    fields = {"content-type": "application/json", "connection": "close", **(headers or {})}
    fields["content-length"] = str(len(body))
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
