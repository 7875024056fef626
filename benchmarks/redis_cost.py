"""What one image costs Redis, and so how many images a second one Redis core carries.

    .venv/bin/python benchmarks/redis_cost.py --images 20000

Replays, against a throwaway redis-server and without workers, the Redis work of each image's
life: its record written at submission and its message pushed (``Client.submit``), then what a
worker does with it: the broker's commands (kombu takes the message with BRPOP, keeps it in
``unacked`` until the ack; three task events are published) and the status steps
(``start``, a stage write per pipeline stage, ``complete``). Prints the commands per image and
redis-server's CPU time per image (INFO cpu, user + system), from which the images per second one
core would carry at full load. Fixed costs that do not grow with images (heartbeats, idle polls,
dashboards, the sweep) are left out: they are small next to a busy fleet's.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import redis
from scratch_redis import scratch_redis  # beside this script

from infra.settings import Settings
from infra.status import STAGES, StatusStore
from producer.client import Client

EVENT = json.dumps(
    {"type": "task-received", "uuid": "b" * 40, "hostname": "worker@host"}
    | {
        "name": "blurq.blur_image",
        "args": "",
        "kwargs": "",
        "root_id": None,
        "parent_id": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "clock": 1,
        "timestamp": 1.0,
        "utcoffset": 0,
        "pid": 1,
        "local_received": 1.0,
    }
)
"""About the size of one of Celery's task events (three per image: received, started, done)."""


def cpu(raw: Any) -> float:
    found = raw.info("cpu")
    return float(found["used_cpu_user"]) + float(found["used_cpu_sys"])


def commands(raw: Any) -> int:
    return sum(int(stat["calls"]) for stat in raw.info("commandstats").values())


def work(raw: Any, store: StatusStore, envelope: bytes, batch: str, image: str) -> None:
    """What a worker does with one image's message, against Redis."""
    raw.brpop("bulk", timeout=1)
    pipe = raw.pipeline()
    pipe.zadd("unacked_index", {"tag": time.time()}).hset("unacked", "tag", envelope)
    pipe.execute()
    raw.publish("celeryev", EVENT)
    store.start(batch, image, "worker@host")
    raw.publish("celeryev", EVENT)
    for stage in STAGES:
        store.set_stage(batch, image, stage)
    timings = dict.fromkeys(STAGES, 0.01)
    store.complete(batch, image, timings=timings, output=f"s3://shop/out/{image}.jpg")
    raw.publish("celeryev", EVENT)
    raw.pipeline().zrem("unacked_index", "tag").hdel("unacked", "tag").execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    args = parser.parse_args()
    with scratch_redis() as url:
        raw = redis.Redis.from_url(url)
        client = Client(Settings(redis_url=url, s3_endpoint_url="http://127.0.0.1:9"))
        uris = [f"s3://shop/catalogue/{n:06d}.jpg" for n in range(args.images)]
        begin_cpu, begin_calls = cpu(raw), commands(raw)
        batch = client.submit(uris=uris, output="s3://shop/out/")
        submitted_cpu, submitted_calls = cpu(raw), commands(raw)
        envelope = raw.lindex("bulk", -1) or b""
        for n in range(args.images):
            work(raw, client.status_store, envelope, batch, f"{n:06d}")
        end_cpu, end_calls = cpu(raw), commands(raw)
        assert client.status(batch).done == args.images
        report(
            args.images,
            (begin_cpu, submitted_cpu, end_cpu),
            (begin_calls, submitted_calls, end_calls),
        )


def report(images: int, cpus: tuple[float, float, float], calls: tuple[int, int, int]) -> None:
    submit_us = (cpus[1] - cpus[0]) * 1e6 / images
    work_us = (cpus[2] - cpus[1]) * 1e6 / images
    print(f"{images} images, per image (commands inside Lua steps counted):")
    submit_calls, work_calls = (calls[1] - calls[0]) / images, (calls[2] - calls[1]) / images
    print(f"  submission: {submit_calls:.1f} commands, {submit_us:.0f} us of Redis CPU")
    print(f"  a worker's: {work_calls:.1f} commands, {work_us:.0f} us of Redis CPU")
    total = submit_us + work_us
    print(
        f"  in all {total:.0f} us: one Redis core at full load carries {1e6 / total:.0f} images/s"
    )


if __name__ == "__main__":
    main()
