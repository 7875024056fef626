"""Batch commands: ``submit``, ``status``, ``watch`` and ``cancel``."""

from __future__ import annotations

import sys
from typing import Any

import click

from infra.jobs import QUEUES
from infra.params import BlurParams, cli_options
from infra.settings import Settings
from producer.cli.options import connection_options, fail_cleanly


def _client(settings: Settings) -> Any:
    from producer.client import Client

    return Client(settings)


@click.command()
@click.argument("uris", nargs=-1)
@click.option("--prefix", help="Submit every image under this s3:// prefix.")
@click.option("--manifest", help="A file (path or s3:// URI) listing one input per line.")
@click.option("--out", "output", required=True, help="Output s3://bucket/prefix/.")
@click.option("--batch-id", help="Your id for the batch; resubmitting it sends nothing twice.")
@click.option("--queue", type=click.Choice(QUEUES), help="Default: interactive for <= 8 images.")
@click.option("--watch", is_flag=True, help="Show a live progress bar until the batch ends.")
@cli_options
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
        params=BlurParams(**render),
        batch_id=batch_id,
        queue=queue,
    )
    click.echo(batch)
    if watch:
        _follow(client, batch)


@click.command()
@click.argument("batch_id")
@click.option("--failed", is_flag=True, help="Also list the failed images with their reasons.")
@connection_options
@fail_cleanly
def status(settings: Settings, batch_id: str, failed: bool) -> None:
    """Show a batch's progress."""
    from infra.status import ImageState
    from producer.cli.progress import render

    client = _client(settings)
    click.echo(render(client.status(batch_id)))
    if failed:
        for image in client.images(batch_id, ImageState.FAILED):
            click.echo(f"{image.input}\t{image.error}")


@click.command()
@click.argument("batch_id")
@connection_options
@fail_cleanly
def watch(settings: Settings, batch_id: str) -> None:
    """Follow a batch with a live progress bar until it ends."""
    _follow(_client(settings), batch_id)


@click.command()
@click.argument("batch_id")
@connection_options
@fail_cleanly
def cancel(settings: Settings, batch_id: str) -> None:
    """Cancel a batch: its queued images end cancelled, running ones finish."""
    from producer.cli.progress import render

    click.echo(render(_client(settings).cancel(batch_id)))


def _follow(client: Any, batch_id: str) -> None:
    from producer.cli.progress import follow

    final = follow(lambda: client.status(batch_id), sys.stdout)
    if final.failed:
        click.echo(f"{final.failed} failed: blurq status {batch_id} --failed")
