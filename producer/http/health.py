"""Probes for load balancers and Kubernetes, without a key and outside ``/v1``.

``GET /livez`` answers 200 while the process serves requests at all (a liveness probe: restarting
cannot fix Redis, so it does not look there). ``GET /healthz`` answers 200 when the status Redis
and the broker both answer a PING within ``TIMEOUT_S``, else 503 naming which does not (a
readiness probe: a replica that cannot reach Redis is taken out of the balancer). Neither says
where Redis is or why it failed beyond the kind of error.
"""

from __future__ import annotations

import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from infra.settings import Settings

TIMEOUT_S = 2.0
"""Longest wait for each PING: a probe must answer before its own timeout."""


def install(app: FastAPI, settings: Settings) -> None:
    """Add /livez and /healthz to app, with Redis connections of their own (short timeouts)."""
    targets = {
        name: redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        for name, url in (("redis", settings.redis_url), ("broker", settings.broker))
    }

    @app.get("/livez", include_in_schema=False)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz", include_in_schema=False)
    def healthy() -> JSONResponse:
        checks = {name: _ping(connection) for name, connection in targets.items()}
        ok = all(result == "ok" for result in checks.values())
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)


def _ping(connection: redis.Redis) -> str:
    try:
        connection.ping()
    except RedisError as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"
