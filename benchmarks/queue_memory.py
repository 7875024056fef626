"""Redis memory per queued image: what sizing a deployment's Redis starts from (docs/deploy.md).

Starts redis-server and the local S3 server (no workers, so every message stays queued), submits
a batch of N image URIs through ``Client.submit`` three times (Redis flushed before each) and
prints the growth of Redis' ``used_memory`` per image: the messages and the status records
together. Keys look like a catalogue's (``s3://shop/products/sku-0000042.jpg``).

    .venv/bin/python benchmarks/queue_memory.py --images 5000
"""

from __future__ import annotations

import argparse
import statistics

import redis

from infra.settings import Settings
from producer.client import Client
from producer.local.stack import LocalStack


def per_image(client: Client, connection: redis.Redis, images: int, run: int) -> float:
    """Bytes of Redis memory that one submission of images adds, per image."""
    connection.flushall()
    before = int(connection.info("memory")["used_memory"])
    uris = [f"s3://shop/products/sku-{number:07d}.jpg" for number in range(images)]
    client.submit(uris=uris, output="s3://shop/blurred/", batch_id=f"memory-{run}")
    return (int(connection.info("memory")["used_memory"]) - before) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    images = parser.parse_args().images
    with LocalStack(workers=0, flower=False, api=False) as stack:
        settings = stack.settings(Settings())
        connection = redis.Redis.from_url(settings.redis_url)
        client = Client(settings)
        runs = [per_image(client, connection, images, run) for run in range(3)]
        queued = connection.llen("bulk")
    print(f"{images} images queued ({queued} messages in bulk), 3 runs")
    median = statistics.median(runs)
    print(f"bytes per queued image: {[round(run) for run in runs]}, median {median:.0f}")


if __name__ == "__main__":
    main()
