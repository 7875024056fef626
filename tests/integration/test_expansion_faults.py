"""Big batches in the background, on real processes: the API answers 202 at once, the expander
lists while workers already render, and an expander killed mid-way is replaced and goes on.

One stack for the module: redis-server, the local S3 server, the API and the expander, whose
maintenance sweep runs every second; workers are started by the test that wants them.
"""

from __future__ import annotations

import io
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from PIL import Image

from infra.jobs import JobMessage
from infra.settings import Settings
from infra.status import EXPANDING_KEY, batch_key
from infra.storage import S3Storage
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "listed"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLURQ_SWEEP_INTERVAL", "1")  # the children copy os.environ
        directory = tmp_path_factory.mktemp("expansion")
        with LocalStack(workers=0, flower=False, log_dir=directory) as running:
            storage = S3Storage(running.settings(Settings()))
            storage.ensure_bucket(BUCKET)
            buffer = io.BytesIO()
            pixels = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "JPEG")
            storage.put(BUCKET, "photos/real.jpg", buffer.getvalue(), content_type="image/jpeg")
            yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": stack.api_key}) as client:
        yield client


def put_manifest(stack: LocalStack, name: str, lines: list[str]) -> str:
    storage = S3Storage(stack.settings(Settings()))
    storage.put(BUCKET, name, "\n".join(lines).encode(), content_type="text/plain")
    return f"s3://{BUCKET}/{name}"


def queued_messages(stack: LocalStack, queue: str = "bulk") -> list[JobMessage]:
    """The job messages waiting in a queue (no worker takes them in this test)."""
    broker = redis.Redis.from_url(stack.redis_url)
    bodies = [json.loads(json.loads(raw)["body"]) for raw in broker.lrange(queue, 0, -1)]
    return [JobMessage.decode(body[0][0]) for body in bodies]


def batch(api: httpx.Client, batch_id: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/v1/batches/{batch_id}").raise_for_status().json()
    return found


def test_a_big_manifest_is_answered_at_once_and_rendering_starts_before_listing_ends(
    stack: LocalStack, api: httpx.Client
) -> None:
    lines = ["photos/real.jpg"] + [f"missing/{n:06d}.jpg" for n in range(4_999)]
    manifest = put_manifest(stack, "five-thousand.txt", lines)
    worker = stack.start_worker("worker1")
    stack.wait_for_workers(1, timeout=180)
    try:
        begin = time.monotonic()
        reply = api.post(
            "/v1/batches", json={"manifest": manifest, "output": f"s3://{BUCKET}/out/"}
        )
        answered = time.monotonic() - begin
        assert reply.status_code == 202, reply.text
        assert reply.json()["state"] == "expanding" and reply.json()["total"] == 0
        assert answered < 5.0  # the request never reads the manifest (benchmarks/expand.py)
        batch_id = reply.json()["batch_id"]
        deadline = time.monotonic() + 600
        while not (found := batch(api, batch_id))["finished"]:
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
    finally:
        stack.processes.pop("worker1")
        worker.terminate()
        worker.wait(timeout=60)
    assert (found["total"], found["counts"]["done"], found["counts"]["failed"]) == (5_000, 1, 4_999)
    record = redis.Redis.from_url(stack.redis_url, decode_responses=True).hgetall(
        batch_key(batch_id)
    )
    # The first image started while the rest was still being listed and sent.
    assert float(record["started_at"]) < float(record["submitted_at"])


def test_an_expander_killed_mid_way_is_replaced_and_the_batch_is_listed_once(
    stack: LocalStack, api: httpx.Client
) -> None:
    count = 30_000
    manifest = put_manifest(stack, "thirty-thousand.txt", [f"p/{n:06d}.jpg" for n in range(count)])
    reply = api.post("/v1/batches", json={"manifest": manifest, "output": f"s3://{BUCKET}/o/"})
    batch_id = reply.json()["batch_id"]
    deadline = time.monotonic() + 120
    while (found := batch(api, batch_id))["total"] < 2_000:  # mid-way through its second pass
        assert found["state"] == "expanding" and time.monotonic() < deadline, found
        time.sleep(0.05)
    expander = stack.processes.pop("expander")
    expander.send_signal(signal.SIGKILL)
    expander.wait(timeout=30)
    stopped = batch(api, batch_id)
    assert stopped["state"] == "expanding" and stopped["total"] < count
    stack.start_expander()  # another expander, sweeping every second
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    # As if its lease had lapsed a minute ago: the sweep sends the batch to the new expander.
    client.hset(batch_key(batch_id), "expanding_at", str(time.time() - 61))
    client.zadd(EXPANDING_KEY, {batch_id: time.time() - 61})
    deadline = time.monotonic() + 300
    while (found := batch(api, batch_id))["state"] == "expanding":
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert found["total"] == count and found["counts"]["queued"] == count
    keys = Counter(message.input_key for message in queued_messages(stack))
    assert len(keys) == count and max(keys.values()) <= 2  # every input sent
    # Each image is recorded once; a chunk whose messages were on their way when the expander
    # died may be sent again (at least once), never an image twice in the records.
    ids = client.lrange(f"{batch_key(batch_id)}:images", 0, -1)
    assert len(ids) == len(set(ids)) == count
