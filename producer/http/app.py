"""The HTTP API and the dashboard in one ASGI app: ``create_app(settings)``.

Run it with ``blurq api``. The JSON API lives under ``/v1`` (OpenAPI at ``/openapi.json``), the
dashboard at ``/``, probes at ``/livez`` and ``/healthz`` (``producer.http.health``),
Prometheus metrics at ``/metrics`` (behind ``Authorization: Bearer
<BLURQ_METRICS_TOKEN>`` when that is set; otherwise open: bind the app to loopback or a private
network that only Prometheus reaches). In front of it all, ``producer.http.limits.RequestGate``
checks keys and body sizes before any body is read and throttles addresses that keep failing.
Query strings never reach the access log (they could carry secrets someone pasted into a URL).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra import tenants
from infra.errors import StatusUnavailable
from infra.settings import Settings, get_settings
from producer.client import Client
from producer.dashboard import routes as dashboard
from producer.http import batch_actions, fleet, health, manifest, metrics, routes
from producer.http.limits import RequestGate


class NoQueryStrings(logging.Filter):
    """Drops the query string from uvicorn's access log lines (``"GET /path?x=y"`` → ``/path``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path argument in place; never drops a line."""
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, code = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, code)
        return True


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The heartbeat watch starts with the server, so that the first fleet view has heard them;
    # a second server of the same app (tests) shares it and leaves closing it to the first.
    first = getattr(app.state, "fleet", None) is None
    if first:
        app.state.fleet = fleet.FleetView(app.state.client)
    yield
    if first and app.state.fleet is not None:
        await run_in_threadpool(app.state.fleet.close)
        app.state.fleet = None


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app serving the API and the dashboard for the Redis and S3 in settings."""
    settings = settings or get_settings()
    app = FastAPI(title="blurq", summary="Bulk optical background blur", lifespan=_lifespan)
    app.state.settings = settings
    app.state.tenants = tenants.load(settings)  # read once; the gate and the routes share it
    app.state.client = Client(settings)
    app.include_router(dashboard.router)
    routes.install(app)
    health.install(app, settings)
    app.include_router(batch_actions.router)
    app.include_router(manifest.router)
    app.include_router(fleet.router)
    app.add_middleware(RequestGate, settings=settings)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(found, NoQueryStrings) for found in access.filters):
        access.addFilter(NoQueryStrings())
    scrape = metrics.registry(app.state.client.status_store, settings.broker)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if settings.metrics_token and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(),
            f"Bearer {settings.metrics_token}".encode(),
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="send Authorization: Bearer <BLURQ_METRICS_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            text = await run_in_threadpool(generate_latest, scrape)
        except Exception as error:  # Redis down: say so instead of an empty page
            raise StatusUnavailable(f"metrics unavailable: {error}") from error
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app
