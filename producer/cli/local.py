"""Local commands: ``dev up`` (the embedded stack until Ctrl-C) and ``demo``."""

from __future__ import annotations

import sys
from typing import Any

import click

from producer.cli.options import fail_cleanly


@click.group()
def dev() -> None:
    """The embedded local stack (no Docker)."""


@dev.command("up")
@click.option("--workers", type=click.IntRange(1, 16), default=2, show_default=True)
def dev_up(workers: int) -> None:
    """Start redis-server, a local S3 server, workers and Flower until Ctrl-C."""
    from producer.local.stack import LocalStack

    with LocalStack(workers=workers) as stack:
        click.echo(
            f"redis      {stack.redis_url}  (password in the URL)\ns3         {stack.s3_endpoint}\n"
            f"{addresses(stack)}\nlogs       {stack.log_dir}"
        )
        # A development stack on loopback, made up for this run: printing its secrets is the point.
        click.echo("environment for other shells (this run's fresh secrets; dev stack only):")
        for name, value in stack.environment().items():
            if name.startswith("BLURQ_") and value:
                click.echo(f"  export {name}={value}")
        click.echo("Ctrl-C stops everything.")
        _sleep_until_interrupted()


def addresses(stack: Any) -> str:
    """Where the stack's API, dashboard and Flower are, with their credentials (dev up, demo)."""
    return (
        f"api        {stack.api_url}/v1  (OpenAPI: {stack.api_url}/docs)\n"
        f"dashboard  {stack.api_url}/  (sign in with the API key)\n"
        f"api key    {stack.api_key}  (X-API-Key header, or Authorization: Bearer)\n"
        f"flower     {stack.flower_url}  (user {stack.flower_user}, "
        f"password {stack.flower_password})"
    )


def _sleep_until_interrupted() -> None:
    import signal

    try:
        signal.pause()
    except KeyboardInterrupt:
        click.echo("\nstopping")


@click.command()
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
    from producer.local.demo import run_demo

    keep = sys.stdout.isatty() if hold is None else hold
    run_demo(out_dir, workers=workers, hold=_sleep_until_interrupted if keep else None)
