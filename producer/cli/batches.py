"""Batch commands: ``submit``, ``status``, ``watch`` and ``cancel``.

They talk to Redis and the broker directly, as the operator, for one tenant (``--tenant``,
default ``default``: single-tenant mode); a submission is confined to that tenant's prefixes
and quotas exactly as through the API.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from infra.jobs import QUEUES
from infra.params import BlurParams, cli_options
from infra.settings import Settings
from infra.tenants import DEFAULT_TENANT
from producer.cli.options import connection_options, fail_cleanly

tenant_option = click.option(
    "--tenant",
    default=DEFAULT_TENANT,
    show_default=True,
    help="The tenant whose batch this is (BLURQ_TENANTS_FILE; default: single-tenant mode).",
)


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
@tenant_option
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
    tenant: str,
    **render: Any,
) -> None:
    """Submit a batch: s3:// URIs, a --prefix or a --manifest."""
    client = _client(settings)
    batch = client.submit(
        tenant=client.tenant(tenant),
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
        _follow(client, batch, tenant)


@click.command()
@click.argument("batch_id")
@click.option("--failed", is_flag=True, help="Also list the failed images with their reasons.")
@click.option(
    "--review",
    is_flag=True,
    help="Also list the done images whose matte needs a look: input, confidence, output.",
)
@tenant_option
@connection_options
@fail_cleanly
def status(settings: Settings, batch_id: str, failed: bool, review: bool, tenant: str) -> None:
    """Show a batch's progress."""
    from infra.status import ImageState
    from producer.cli.progress import render

    client = _client(settings)
    click.echo(render(client.status(batch_id, tenant=tenant)))
    if failed:
        for image in client.images(batch_id, ImageState.FAILED, tenant=tenant):
            click.echo(f"{printable(image.input)}\t{printable(image.error)}")
    if review:
        for image in client.images(batch_id, ImageState.DONE, tenant=tenant):
            if image.review and image.confidence is not None:
                score = f"{image.confidence:.3f}"
                click.echo(f"{printable(image.input)}\t{score}\t{printable(image.output)}")


@click.command()
@click.argument("batch_id")
@tenant_option
@connection_options
@fail_cleanly
def watch(settings: Settings, batch_id: str, tenant: str) -> None:
    """Follow a batch with a live progress bar until it ends."""
    _follow(_client(settings), batch_id, tenant)


@click.command()
@click.argument("batch_id")
@tenant_option
@connection_options
@fail_cleanly
def cancel(settings: Settings, batch_id: str, tenant: str) -> None:
    """Cancel a batch: its queued images end cancelled, running ones finish."""
    from producer.cli.progress import render

    click.echo(render(_client(settings).cancel(batch_id, tenant=tenant)))


def printable(text: str) -> str:
    """text with control characters escaped: S3 keys and errors may hold terminal escapes."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _follow(client: Any, batch_id: str, tenant: str) -> None:
    from producer.cli.progress import follow

    final = follow(lambda: client.status(batch_id, tenant=tenant), sys.stdout)
    option = "" if tenant == DEFAULT_TENANT else f" --tenant {tenant}"
    if final.failed:
        click.echo(f"{final.failed} failed: blurq status {batch_id}{option} --failed")
    if final.review:
        click.echo(f"{final.review} to review: blurq status {batch_id}{option} --review")
