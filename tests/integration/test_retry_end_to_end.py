"""Failures, retries and the fleet on the real stack, over HTTP, as Flower and the API tell them.

A batch with a missing photo and a file that is not a photo ends with two failures: Flower shows
those two tasks failed with their reasons (and the others succeeded), and no message is left
unacknowledged or delivered twice. Once the two objects are put right, one retry sends exactly
those two again: the batch runs again, ends with every image done, and its webhook fires again
for the new end. The manifest's rows are the API's images; the fleet shows the stack's workers.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
import redis

from infra.settings import Settings
from infra.storage import S3Storage
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

BUCKET = "retry-e2e"
BATCH = "retry-e2e"


class Hooks(BaseHTTPRequestHandler):
    """Records each webhook body and answers 204."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hooks() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", free_port()), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": stack.api_key}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def finished(api: httpx.Client) -> dict[str, Any] | None:
    batch: dict[str, Any] = api.get(f"/v1/batches/{BATCH}").raise_for_status().json()
    return batch if batch["finished"] else None


def flower_tasks(stack: LocalStack) -> list[dict[str, Any]]:
    reply = httpx.get(f"{stack.flower_url}/api/tasks", headers=stack.flower_headers, timeout=10)
    return [t for t in reply.json().values() if t["uuid"].startswith(f"{BATCH}:")]


def test_failures_are_failed_in_flower_and_a_retry_sends_exactly_them_again(
    stack: LocalStack, api: httpx.Client, hooks: str
) -> None:
    storage = S3Storage(stack.settings(Settings()))
    storage.ensure_bucket(BUCKET)
    photo = SAMPLES[0].jpeg(long_side=256)
    for name in ("a", "b", "c"):
        storage.put(BUCKET, f"in/{name}.jpg", photo, content_type="image/jpeg")
    storage.put(BUCKET, "in/notes.jpg", b"shopping list", content_type="image/jpeg")
    uris = [f"s3://{BUCKET}/in/{name}.jpg" for name in ("a", "b", "c", "notes", "missing")]
    body = {"uris": uris, "output": f"s3://{BUCKET}/out/", "batch_id": BATCH, "webhook_url": hooks}
    assert api.post("/v1/batches", json=body).status_code == 201
    first = wait(lambda: finished(api), 300, "the batch to end")
    assert (first["counts"]["done"], first["counts"]["failed"]) == (3, 2)

    flower_and_the_broker_agree(stack, api)
    wait(lambda: len(Hooks.received) == 1, 60, "the first webhook")

    storage.put(BUCKET, "in/notes.jpg", photo, content_type="image/jpeg")
    storage.put(BUCKET, "in/missing.jpg", photo, content_type="image/jpeg")
    answer = api.post(f"/v1/batches/{BATCH}/retry").json()
    assert answer["retried"] == 2 and not answer["finished"]
    assert answer["webhook"] == {"status": "waiting", "attempts": 0}
    again = wait(lambda: finished(api), 300, "the retried batch to end")
    assert again["counts"] == {"queued": 0, "running": 0, "done": 5, "failed": 0, "cancelled": 0}
    wait(lambda: len(Hooks.received) == 2, 60, "the webhook of the new end")
    assert (Hooks.received[-1]["done"], Hooks.received[-1]["failed"]) == (5, 0)
    retried = [i for i in api.get(f"/v1/batches/{BATCH}/images").json()["images"] if i["retried"]]
    assert sorted(i["input"] for i in retried) == sorted(uris[3:])
    assert all(i["state"] == "done" and i["deliveries"] == 1 for i in retried)
    tasks = wait(
        lambda: (
            (found := flower_tasks(stack))
            and len(found) == 7
            and sum(t["state"] == "SUCCESS" for t in found) == 5
            and found
        ),
        60,
        "Flower to see the two new tasks succeed",
    )
    assert sum(t["state"] == "FAILURE" for t in tasks) == 2  # the first attempts stay failed


def flower_and_the_broker_agree(stack: LocalStack, api: httpx.Client) -> None:
    """Flower: two tasks failed with their reasons, three succeeded; every message acked once."""
    tasks = wait(
        lambda: (
            (found := flower_tasks(stack))
            and len(found) == 5
            and all(t["state"] in ("SUCCESS", "FAILURE") for t in found)
            and found
        ),
        60,
        "Flower to see the five tasks end",
    )
    failed = sorted(t["exception"] for t in tasks if t["state"] == "FAILURE")
    assert len(failed) == 2 and sum(t["state"] == "SUCCESS" for t in tasks) == 3
    assert "NoSuchKey" in failed[0] + failed[1] and "ImageFailed" in failed[0]
    assert any("image" in reason.lower() for reason in failed)
    broker = redis.Redis.from_url(stack.redis_url)  # kombu keeps unacked messages in a hash
    wait(lambda: broker.hlen("unacked") == 0, 30, "every message to be acknowledged")
    broker.close()
    images = api.get(f"/v1/batches/{BATCH}/images").json()["images"]
    assert all(image["deliveries"] == 1 for image in images)  # failed, acked, not redelivered


def test_the_manifest_rows_are_the_apis_images(api: httpx.Client) -> None:
    listed = api.get(f"/v1/batches/{BATCH}/images").json()["images"]
    text = api.get(f"/v1/batches/{BATCH}/manifest", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["image_id"], r["input"], r["state"], r["output"], r["error"]) for r in rows] == [
        (i["image_id"], i["input"], i["state"], i["output"], i["error"]) for i in listed
    ]
    for row, image in zip(rows, listed, strict=True):
        assert float(row["seconds"]) == pytest.approx(sum(image["timings"].values()), abs=1e-3)
    jsonl = api.get(f"/v1/batches/{BATCH}/manifest", params={"format": "jsonl"}).text
    assert [json.loads(line) for line in jsonl.splitlines()] == listed


def test_the_fleet_shows_the_stacks_workers_and_the_last_hour(api: httpx.Client) -> None:
    fleet = wait(
        lambda: (found := api.get("/v1/fleet").json())["workers_online"] >= 2 and found,
        30,
        "the workers' heartbeats",
    )
    assert len(fleet["workers"]) >= 2 and all(w["name"] for w in fleet["workers"])
    assert set(fleet["queues"]) == {"interactive", "bulk", "webhooks"}
    assert fleet["done_last_hour"] >= 5 and fleet["failed_last_hour"] >= 2
