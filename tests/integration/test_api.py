"""The HTTP API as a real process on the local stack: submit, read, page, cancel, webhooks, metrics.

Everything goes over HTTP to the ``blurq api`` process that LocalStack starts; the images are
rendered by the stack's Celery workers. Photos are small (320 px) to keep the module quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from infra.settings import Settings
from infra.storage import S3Storage
from infra.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, secret_for, verify
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

BUCKET = "api"
COPIES = 30  # the cancel test's batch: far more than two workers start before the cancel


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    storage = S3Storage(stack.settings(Settings()))
    storage.ensure_bucket(BUCKET)
    for sample in SAMPLES[:3]:
        photo = sample.jpeg(long_side=320)
        storage.put(BUCKET, f"photos/{sample.name}.jpg", photo, content_type="image/jpeg")
    photo = SAMPLES[3].jpeg(long_side=320)
    for number in range(COPIES):
        storage.put(BUCKET, f"many/{number:03d}.jpg", photo, content_type="image/jpeg")
    headers = {"X-API-Key": stack.api_key}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def photos() -> list[str]:
    return [f"s3://{BUCKET}/photos/{sample.name}.jpg" for sample in SAMPLES[:3]]


def wait_finished(api: httpx.Client, batch_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = api.get(f"/v1/batches/{batch_id}").raise_for_status().json()
        if batch["finished"]:
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)


def listed(api: httpx.Client, reply: httpx.Response, timeout: float = 120) -> dict[str, Any]:
    """A prefix or manifest batch (answered 202, expanding) once all its inputs are found."""
    assert reply.status_code == 202 and reply.json()["state"] == "expanding", reply.text
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = api.get(reply.headers["location"]).raise_for_status().json()
        if batch["state"] != "expanding":
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)


def adds_up(batch: dict[str, Any]) -> bool:
    return sum(batch["counts"].values()) == batch["total"]


@pytest.fixture(scope="module")
def finished(api: httpx.Client) -> dict[str, Any]:
    body = {
        "uris": [*photos(), f"s3://{BUCKET}/photos/missing.jpg"],
        "output": f"s3://{BUCKET}/out/",
        "params": {"strength": 50, "format": "png"},
    }
    reply = api.post("/v1/batches", json=body, headers={"Idempotency-Key": "api-1"})
    assert reply.status_code == 201, reply.text
    assert reply.json()["batch_id"] == "api-1" and reply.headers["location"] == "/v1/batches/api-1"
    return wait_finished(api, "api-1")


def test_submit_and_read_status(finished: dict[str, Any]) -> None:
    assert finished["counts"] == {"queued": 0, "running": 0, "done": 3, "failed": 1, "cancelled": 0}
    assert finished["total"] == 4 and not finished["cancelled"] and finished["eta_seconds"] is None
    assert finished["params"]["strength"] == 50 and finished["params"]["format"] == "png"
    assert finished["queue"] == "interactive" and finished["output"] == f"s3://{BUCKET}/out/"
    assert finished["created_at"] <= finished["started_at"] <= finished["finished_at"]
    assert finished["rate"] > 0


def test_images_by_state_with_reasons_and_outputs(
    api: httpx.Client, finished: dict[str, Any]
) -> None:
    failed = api.get("/v1/batches/api-1/images", params={"state": "failed"}).json()
    assert [image["input"] for image in failed["images"]] == [f"s3://{BUCKET}/photos/missing.jpg"]
    assert "NoSuchKey" in failed["images"][0]["error"] and failed["next_offset"] is None
    done = api.get("/v1/batches/api-1/images", params={"state": "done"}).json()["images"]
    assert {image["input"] for image in done} == set(photos())
    for image in done:
        assert image["output"].startswith(f"s3://{BUCKET}/out/photos/")
        assert image["output"].endswith(".png") and image["error"] == ""
        assert {"get", "matting", "bokeh", "put"} <= set(image["timings"])
        assert image["started_at"] <= image["finished_at"]
        assert 0.0 <= image["confidence"] <= 1.0 and isinstance(image["review"], bool)
    flagged = api.get("/v1/batches/api-1/images", params={"review": "true"}).json()["images"]
    assert [image["image_id"] for image in flagged] == [i["image_id"] for i in done if i["review"]]
    assert finished["review"] == len(flagged)
    page = api.get("/v1/batches/api-1/images", params={"limit": 2}).json()
    rest = api.get("/v1/batches/api-1/images", params={"offset": page["next_offset"]}).json()
    ids = [image["image_id"] for image in page["images"] + rest["images"]]
    assert ids == ["000000", "000001", "000002", "000003"] and rest["next_offset"] is None


def tasks_sent(stack: LocalStack, batch_id: str, *, at_least: int = 0) -> int:
    """How many blur tasks of the batch Flower has seen (from the workers' task-received events;
    a task's id is ``<batch id>:<image id>``, infra.publish)."""
    deadline = time.monotonic() + 60
    while True:
        reply = httpx.get(f"{stack.flower_url}/api/tasks", headers=stack.flower_headers, timeout=10)
        tasks = reply.json().values()
        seen = sum(task["uuid"].startswith(f"{batch_id}:") for task in tasks)
        if seen >= at_least or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_resubmitting_the_same_key_sends_nothing_twice(
    api: httpx.Client, finished: dict[str, Any], stack: LocalStack
) -> None:
    assert tasks_sent(stack, "api-1", at_least=4) == 4  # Flower sees the batch's messages
    body = {
        "uris": [*photos(), f"s3://{BUCKET}/photos/missing.jpg"],
        "output": f"s3://{BUCKET}/out/",
        "params": {"strength": 50, "format": "png"},
        "batch_id": "api-1",
    }
    broker = redis.Redis.from_url(stack.redis_url)
    pushes = broker.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    again = api.post("/v1/batches", json=body, headers={"Idempotency-Key": "api-1"})
    assert again.status_code == 200 and again.json()["batch_id"] == "api-1"
    # Messages go out as LPUSHes (infra.publish): none was pushed for the resubmission.
    assert broker.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0) == pushes
    time.sleep(3)  # events of anything sent again would reach Flower well within this
    assert tasks_sent(stack, "api-1") == 4
    other = {**body, "params": {"strength": 60, "format": "png"}}
    conflict = api.post("/v1/batches", json=other)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"


def test_racing_submissions_of_one_id_give_one_batch_and_409s(
    api: httpx.Client, stack: LocalStack
) -> None:
    """Ten submissions of one id at once, half for another output: one batch, the rest 200/409."""
    uris = [f"s3://{BUCKET}/many/{number:03d}.jpg" for number in range(12)]
    bodies = [
        {"uris": uris, "output": f"s3://{BUCKET}/race-{'ab'[n % 2]}/", "batch_id": "race-1"}
        for n in range(10)
    ]
    answers: list[tuple[str, httpx.Response]] = []
    gate = threading.Barrier(len(bodies))

    def submit(body: dict[str, Any]) -> None:
        gate.wait()
        answers.append((body["output"], api.post("/v1/batches", json=body)))

    threads = [threading.Thread(target=submit, args=(body,)) for body in bodies]
    broker = redis.Redis.from_url(stack.redis_url)
    pushes = broker.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One chunk of messages pushed (infra.publish), not one per racing submission.
    assert broker.info("commandstats")["cmdstat_lpush"]["calls"] - pushes == 1
    created = [output for output, answer in answers if answer.status_code == 201]
    assert len(created) == 1, [(output, answer.text) for output, answer in answers]
    for output, answer in answers:
        if output == created[0]:  # the same request: the batch, or "being created, retry"
            assert answer.status_code in (200, 201, 503), answer.text
        else:  # the other request: a conflict, also while the winner was still being written
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["code"] == "idempotency_conflict"
    batch = api.get("/v1/batches/race-1").raise_for_status().json()
    assert batch["output"] == created[0] and batch["total"] == len(uris)
    # Flower sees a task once a worker takes it: each image once, and only once it ran.
    wait_finished(api, "race-1")
    assert tasks_sent(stack, "race-1", at_least=len(uris)) == len(uris)
    wait_finished(api, "race-1")


def test_requests_without_a_valid_key_are_refused(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=30) as anonymous:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            reply = anonymous.get("/v1/batches", headers=headers)
            assert reply.status_code == 401
            assert reply.json()["error"]["code"] == "unauthorized"
        reply = anonymous.post("/v1/batches", json={"output": "s3://a/b/", "prefix": "s3://a/"})
        assert reply.status_code == 401  # refused before anything is read or sent
        bearer = {"Authorization": f"Bearer {stack.api_key}"}
        assert anonymous.get("/v1/batches", headers=bearer).status_code == 200
        schemes = anonymous.get("/openapi.json").json()["components"]["securitySchemes"]
        assert {"APIKeyHeader", "HTTPBearer"} <= set(schemes)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"uris": ["https://example.com/a.jpg"], "output": "s3://api/o/"}, "s3://"),
        (
            {"uris": ["s3://api/a.jpg"], "output": "s3://api/o/", "params": {"strength": 0}},
            "strength",
        ),
        (
            {"uris": ["s3://api/a.jpg"], "prefix": "s3://api/p/", "output": "s3://api/o/"},
            "exactly one",
        ),
        ({"prefix": "s3://api/p/", "output": "file:///tmp/"}, "output"),
        ({"prefix": "s3://api/p/", "output": "s3://api/o/", "webhook_url": "ftp://h/"}, "http"),
        ({"prefix": "s3://api/p/", "output": "s3://api/o/", "colour": "red"}, "colour"),
    ],
)
def test_malformed_input_is_a_clear_422(
    api: httpx.Client, body: dict[str, Any], words: str
) -> None:
    reply = api.post("/v1/batches", json=body)
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_request" and words in error["message"]


def test_empty_prefix_and_unknown_batch(api: httpx.Client) -> None:
    empty = api.post("/v1/batches", json={"prefix": "s3://api/nothing/", "output": "s3://api/o/"})
    failed = listed(api, empty)  # found while listing: the batch fails whole
    assert (failed["state"], failed["error"]) == ("failed", "the batch has no inputs")
    assert failed["finished"] and failed["total"] == 0
    for reply in (api.get("/v1/batches/nope"), api.post("/v1/batches/nope/cancel")):
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "batch_not_found"


def test_cancel_skips_queued_images_and_lets_running_ones_finish(api: httpx.Client) -> None:
    body = {"prefix": f"s3://{BUCKET}/many/", "output": f"s3://{BUCKET}/many-out/", "queue": "bulk"}
    submitted = listed(api, api.post("/v1/batches", json=body))
    assert submitted["total"] == COPIES and submitted["queue"] == "bulk"
    cancelled = api.post(f"/v1/batches/{submitted['batch_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"]
    assert adds_up(cancelled.json()) and cancelled.json()["counts"]["queued"] == 0
    final = wait_finished(api, submitted["batch_id"], timeout=120)
    counts = final["counts"]
    assert adds_up(final) and counts["running"] == counts["queued"] == 0
    assert counts["cancelled"] >= COPIES - 8 and counts["failed"] == 0
    images = api.get(f"/v1/batches/{submitted['batch_id']}/images").json()["images"]
    skipped = [image for image in images if image["state"] == "cancelled"]
    assert len(skipped) == counts["cancelled"]
    assert all(image["output"] == "" and image["deliveries"] == 0 for image in skipped)
    assert all("cancelled" in image["error"] for image in skipped)
    again = api.post(f"/v1/batches/{submitted['batch_id']}/cancel")
    assert again.status_code == 200 and again.json()["counts"] == counts
    finished_one = api.post("/v1/batches/api-1/cancel")
    assert finished_one.status_code == 409
    assert finished_one.json()["error"]["code"] == "batch_finished"


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers 500 to the first one, so that the sender must retry."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(500 if len(self.received) == 1 else 204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_webhook_is_signed_and_retried(api: httpx.Client, stack: LocalStack) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        body = {"uris": photos()[:1], "output": f"s3://{BUCKET}/hooked/", "webhook_url": url}
        batch_id = api.post("/v1/batches", json=body).json()["batch_id"]
        wait_finished(api, batch_id)
        deadline = time.monotonic() + 60
        while len(Receiver.received) < 2:
            assert time.monotonic() < deadline, Receiver.received
            time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    for headers, raw in Receiver.received:
        signed = (raw, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
        assert verify(secret_for(stack.webhook_secret, "default"), url, *signed)
        assert not verify(stack.webhook_secret, url, *signed)  # the tenant's, not the master
        assert not verify(secret_for(stack.webhook_secret, "default"), url + "x", *signed)
    sent = json.loads(Receiver.received[-1][1])
    assert sent["batch_id"] == batch_id and (sent["total"], sent["done"], sent["failed"]) == (
        1,
        1,
        0,
    )
    assert sent["cancelled"] == 0 and sent["output"] == f"s3://{BUCKET}/hooked/"
    assert sent["finished_at"] > 0
    # Both attempts are one delivery to the receiver: the same id, by which it drops repeats.
    assert {headers["X-Blurq-Delivery"] for headers, _ in Receiver.received} == {
        sent["delivery_id"]
    }
    deadline = time.monotonic() + 10
    while (webhook := api.get(f"/v1/batches/{batch_id}").json()["webhook"])[
        "status"
    ] != "delivered":
        assert time.monotonic() < deadline, webhook
        time.sleep(0.2)
    assert webhook == {"status": "delivered", "attempts": 2}


def test_metrics_expose_queues_images_stages_and_batches(
    api: httpx.Client, stack: LocalStack
) -> None:
    batches = api.get("/v1/batches", params={"limit": 200}).json()["batches"]
    with httpx.Client(base_url=stack.api_url, timeout=30) as anonymous:
        reply = anonymous.get("/metrics")  # no key: meant for Prometheus on a private network
    assert reply.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    for state in ("done", "failed", "cancelled"):
        assert value("blurq_images_total", state=state) == sum(b["counts"][state] for b in batches)
    assert value("blurq_images_total", state="done") >= 4
    for queue in ("interactive", "bulk", "webhooks"):
        assert value("blurq_queue_depth", queue=queue) >= 0
    for stage in ("get", "decode", "matting", "foreground", "bokeh", "encode", "put"):
        count = value("blurq_stage_seconds_count", stage=stage)
        assert count >= 4 and value("blurq_stage_seconds_bucket", stage=stage, le="+Inf") == count
        assert 0 < value("blurq_stage_seconds_sum", stage=stage) < 60 * count
    assert value("blurq_batches", state="cancelled") == 1
    total = sum(
        value("blurq_batches", state=s) for s in ("queued", "running", "finished", "cancelled")
    )
    assert total == len(batches)


def test_blurq_api_refuses_to_start_without_a_key() -> None:
    env = {**os.environ, "BLURQ_API_KEYS": ""}
    argv = [sys.executable, "-m", "producer.cli", "api", "--port", str(free_port())]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "BLURQ_API_KEYS" in result.stderr
