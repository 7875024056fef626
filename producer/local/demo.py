"""``blurq demo``: sample photos through the whole system on the embedded local stack.

Starts the stack, uploads real photos (portraits, a pet, products) to the local S3, submits them
as one batch, shows its progress, downloads the results and says where they, the API, the
dashboard and Flower are.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import click

from infra.jobs import BlurParams
from infra.status import ImageState
from infra.storage import S3Storage, S3Uri
from producer.cli.local import addresses
from producer.cli.progress import follow, shown
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

BUCKET = "blurq-demo"
DEMO_PHOTOS = 5


def run_demo(out_dir: str, *, workers: int, hold: Callable[[], None] | None) -> None:
    """Run the demo end to end; with hold, keep the stack up until it returns."""
    begin = time.monotonic()
    with LocalStack(workers=workers) as stack:
        click.echo(f"local stack up: redis {stack.redis_url}, s3 {stack.s3_endpoint}")
        click.echo(addresses(stack))
        settings = stack.settings()
        storage = S3Storage(settings)
        storage.ensure_bucket(BUCKET)
        for sample in SAMPLES[:DEMO_PHOTOS]:
            key = f"photos/{sample.name}.jpg"
            storage.put(BUCKET, key, sample.jpeg(), content_type="image/jpeg")
            click.echo(f"uploaded s3://{BUCKET}/{key} ({sample.subject})")
        click.echo("waiting for the workers (first start loads the models)...")
        stack.wait_for_workers()
        client = Client(settings, storage=storage)
        batch = client.submit(
            prefix=f"s3://{BUCKET}/photos/",
            output=f"s3://{BUCKET}/blurred/",
            params=BlurParams(strength=50),
            batch_id="demo",
        )
        click.echo(f"submitted batch {batch}")
        final = follow(lambda: shown(client.status(batch)), sys.stdout)
        saved = _download(client, storage, batch, Path(out_dir))
        click.echo(f"{final.done} done, {final.failed} failed in {time.monotonic() - begin:.0f} s")
        for path in saved:
            click.echo(f"  {path}")
        succeeded = _flower_succeeded(stack)
        click.echo(f"Flower: {stack.flower_url}/tasks ({succeeded} tasks succeeded; ", nl=False)
        click.echo(f"user {stack.flower_user}, password {stack.flower_password})")
        click.echo(f"dashboard: {stack.api_url}/  (API key {stack.api_key})")
        if hold is not None:
            click.echo("the stack stays up for the dashboard and Flower; Ctrl-C stops it")
            hold()


def _download(client: Client, storage: S3Storage, batch: str, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for image in client.images(batch):
        if image.state is not ImageState.DONE:
            click.echo(f"  failed: {image.input}: {image.error}")
            continue
        where = S3Uri.parse(image.output)
        name = Path(S3Uri.parse(image.input).key).stem + Path(where.key).suffix
        path = folder / name
        path.write_bytes(storage.get(where.bucket, where.key).data)
        saved.append(path.resolve())
    return saved


def _flower_succeeded(stack: LocalStack) -> int:
    """How many tasks Flower has seen succeed (it learns from the workers' events)."""
    url = f"{stack.flower_url}/api/tasks?state=SUCCESS"
    request = urllib.request.Request(url, headers=stack.flower_headers)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return len(json.loads(reply.read()))
