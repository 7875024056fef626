"""Redis memory per queued image: what sizing a deployment's Redis starts from (docs/deploy.md).

Starts redis-server and the local S3 server (no workers, so every message stays queued), submits
a batch of N image URIs through ``Client.submit`` three times (Redis flushed before each) and
prints the growth of Redis' ``used_memory`` per image: the messages and the status records
together, then the records alone (what a finished image keeps for ``BLURQ_STATUS_TTL``). Keys
look like a catalogue's (``s3://shop/products/sku-0000042.jpg``).

    .venv/bin/python benchmarks/queue_memory.py --images 5000
"""

from __future__ import annotations

import argparse
import statistics

import redis

from infra.settings import Settings
from producer.client import Client
from producer.local.stack import LocalStack


def per_image(
    client: Client, connection: redis.Redis, images: int, run: int
) -> tuple[float, float]:
    """Bytes of Redis memory one submission adds per image: in all, and in the records alone.

    The records' share is what stays once the queue's messages are taken away (as workers do).
    """
    connection.flushall()
    before = int(connection.info("memory")["used_memory"])
    uris = [f"s3://shop/products/sku-{number:07d}.jpg" for number in range(images)]
    client.submit(uris=uris, output="s3://shop/blurred/", batch_id=f"memory-{run}")
    queued = int(connection.info("memory")["used_memory"])
    connection.delete("bulk")
    records = int(connection.info("memory")["used_memory"])
    return (queued - before) / images, (records - before) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    images = parser.parse_args().images
    with LocalStack(workers=0, flower=False, api=False) as stack:
        settings = stack.settings(Settings())
        connection = redis.Redis.from_url(settings.redis_url)
        client = Client(settings)
        runs = [per_image(client, connection, images, run) for run in range(3)]
    for what, figures in (
        ("queued image", [r[0] for r in runs]),
        ("image's records", [r[1] for r in runs]),
    ):
        median = statistics.median(figures)
        print(f"bytes per {what}: {[round(f) for f in figures]}, median {median:.0f}")


if __name__ == "__main__":
    main()
