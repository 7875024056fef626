"""Batch commands: ``submit``, ``status``, ``watch``, ``cancel``, ``retry`` and ``images``.

Each works in both modes (``producer.cli.modes``): directly on Redis and the broker as the
operator, for one tenant (``--tenant``, default ``default``: single-tenant mode), or through the
HTTP API with a key (``--api URL``, key in ``BLURQ_API_KEY``). A submission is confined to its
tenant's prefixes and quotas either way; the lines printed and the exit codes are the same.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from infra.jobs import QUEUES
from infra.params import BlurParams, cli_options
from infra.status import ImageState
from producer.cli.modes import Mode, reach
from producer.cli.options import fail_cleanly
from producer.cli.progress import follow, render

STATES = [state.value for state in ImageState]


@click.command()
@click.argument("uris", nargs=-1)
@click.option("--prefix", help="Submit every image under this s3:// prefix.")
@click.option("--manifest", help="A file (path or s3:// URI) listing one input per line.")
@click.option("--out", "output", required=True, help="Output s3://bucket/prefix/.")
@click.option("--batch-id", help="Your id for the batch; resubmitting it sends nothing twice.")
@click.option("--queue", type=click.Choice(QUEUES), help="Default: interactive for <= 8 images.")
@click.option("--watch", is_flag=True, help="Show a live progress bar until the batch ends.")
@cli_options
@reach
@fail_cleanly
def submit(
    mode: Mode,
    uris: tuple[str, ...],
    prefix: str | None,
    manifest: str | None,
    output: str,
    batch_id: str | None,
    queue: str | None,
    watch: bool,
    **render_options: Any,
) -> None:
    """Submit a batch: s3:// URIs, a --prefix or a --manifest."""
    batch = mode.submit(
        uris=list(uris) or None,
        prefix=prefix,
        manifest=manifest,
        output=output,
        params=BlurParams(**render_options),
        batch_id=batch_id,
        queue=queue,
    )
    click.echo(batch)
    if watch:
        _follow(mode, batch)


@click.command()
@click.argument("batch_id")
@click.option("--failed", is_flag=True, help="Also list the failed images with their reasons.")
@click.option(
    "--review",
    is_flag=True,
    help="Also list the done images whose matte needs a look: input, confidence, output.",
)
@reach
@fail_cleanly
def status(mode: Mode, batch_id: str, failed: bool, review: bool) -> None:
    """Show a batch's progress."""
    batch, pace = mode.status(batch_id)
    click.echo(render(batch, pace=pace))
    if failed:
        for image in mode.images(batch_id, ImageState.FAILED):
            click.echo(f"{printable(image.input)}\t{printable(image.error)}")
    if review:
        for image in mode.images(batch_id, ImageState.DONE):
            if image.review and image.confidence is not None:
                score = f"{image.confidence:.3f}"
                click.echo(f"{printable(image.input)}\t{score}\t{printable(image.output)}")


@click.command()
@click.argument("batch_id")
@reach
@fail_cleanly
def watch(mode: Mode, batch_id: str) -> None:
    """Follow a batch with a live progress bar until it ends."""
    _follow(mode, batch_id)


@click.command()
@click.argument("batch_id")
@reach
@fail_cleanly
def cancel(mode: Mode, batch_id: str) -> None:
    """Cancel a batch: its queued images end cancelled, running ones finish."""
    batch, pace = mode.cancel(batch_id)
    click.echo(render(batch, pace=pace))


@click.command()
@click.argument("batch_id")
@reach
@fail_cleanly
def retry(mode: Mode, batch_id: str) -> None:
    """Send a batch's failed images again: they go back to queued and run once more."""
    batch, pace = mode.retry(batch_id)
    click.echo(render(batch, pace=pace))


@click.command()
@click.argument("batch_id")
@click.option("--state", type=click.Choice(STATES), help="Only the images in this state.")
@reach
@fail_cleanly
def images(mode: Mode, batch_id: str, state: str | None) -> None:
    """List a batch's images: id, state, input, and its output or the reason it failed."""
    for image in mode.images(batch_id, None if state is None else ImageState(state)):
        outcome = image.error if image.state == ImageState.FAILED.value else image.output
        click.echo(
            f"{image.image_id}\t{image.state}\t{printable(image.input)}\t{printable(outcome)}"
        )


def printable(text: str) -> str:
    """text with control characters escaped: S3 keys and errors may hold terminal escapes."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _follow(mode: Mode, batch_id: str) -> None:
    final = follow(lambda: mode.status(batch_id), sys.stdout)
    if final.failed:
        click.echo(f"{final.failed} failed: blurq status {batch_id}{mode.hint} --failed")
    if final.review:
        click.echo(f"{final.review} to review: blurq status {batch_id}{mode.hint} --review")
