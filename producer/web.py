"""The HTTP API and the dashboard in one ASGI app: ``create_app(settings)``.

Run it with ``blurq api``. The JSON API lives under ``/v1`` (OpenAPI at ``/openapi.json``), the
dashboard at ``/``, Prometheus metrics at ``/metrics``.
"""

from __future__ import annotations

from fastapi import FastAPI

from infra.settings import Settings, get_settings
from producer import dashboard


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app serving the API and the dashboard for the Redis and S3 in settings."""
    settings = settings or get_settings()
    app = FastAPI(title="blurq", summary="Bulk optical background blur")
    app.state.settings = settings
    app.include_router(dashboard.router)
    return app
