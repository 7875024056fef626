"""The HTTP API and the dashboard in one ASGI app: ``create_app(settings)``.

Run it with ``blurq api``. The JSON API lives under ``/v1`` (OpenAPI at ``/openapi.json``), the
dashboard at ``/``, Prometheus metrics at ``/metrics`` (no key: bind the app to loopback or a
private network that only Prometheus reaches, or put the path behind the proxy's own auth).
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.errors import StatusUnavailable
from infra.settings import Settings, get_settings
from producer.client import Client
from producer.dashboard import routes as dashboard
from producer.http import metrics, routes


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app serving the API and the dashboard for the Redis and S3 in settings."""
    settings = settings or get_settings()
    app = FastAPI(title="blurq", summary="Bulk optical background blur")
    app.state.settings = settings
    app.state.client = Client(settings)
    app.include_router(dashboard.router)
    routes.install(app)
    scrape = metrics.registry(app.state.client.status_store, settings.broker)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        try:
            text = await run_in_threadpool(generate_latest, scrape)
        except Exception as error:  # Redis down: say so instead of an empty page
            raise StatusUnavailable(f"metrics unavailable: {error}") from error
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app
