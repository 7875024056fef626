"""Webhook SSRF on real processes: a stack without the development switch, as an attacker tries it.

The stack's API refuses every spelling of a private target at submit; its worker, handed a private
URL straight through Redis (the submit check bypassed), refuses it again at send, records the same
failure text whether the port is open or closed, and a listener on loopback proves nothing arrives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
import redis

from infra.celery_app import create_app, send_webhook
from infra.settings import Settings
from infra.status import batch_key
from infra.storage import S3Storage
from infra.webhooks import REFUSED
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

BUCKET = "ssrf"


class Listener(BaseHTTPRequestHandler):
    """Records anything that reaches it: every test here expects it to stay empty."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.received.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", free_port()), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()
    assert Listener.received == []


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """API and one worker with the production default: no private webhook targets."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("BLURQ_WEBHOOK_ALLOW_PRIVATE", raising=False)  # the shared stack sets it
        running = LocalStack(workers=1, flower=False, log_dir=tmp_path_factory.mktemp("ssrf"))
        running.start()
    try:
        running.wait_for_workers(timeout=180)
        S3Storage(running.settings(Settings())).ensure_bucket(BUCKET)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(strict: LocalStack) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": strict.api_key}
    with httpx.Client(base_url=strict.api_url, headers=headers, timeout=30) as client:
        yield client


def spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/hook",
        f"http://127.0.0.2:{port}/hook",
        f"http://2130706433:{port}/hook",
        f"http://0x7f000001:{port}/hook",
        f"http://127.1:{port}/hook",
        f"http://0177.0.0.1:{port}/hook",
        f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://[::1]:{port}/hook",
        f"http://localhost:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/",
        "http://192.168.0.1/",
    ]


def test_every_spelling_is_refused_at_submit(api: httpx.Client, listener: int) -> None:
    for url in spellings(listener):
        body = {"uris": [f"s3://{BUCKET}/a.jpg"], "output": f"s3://{BUCKET}/o/", "webhook_url": url}
        reply = api.post("/v1/batches", json=body)
        assert reply.status_code == 422, (url, reply.text)
        assert REFUSED in reply.json()["error"]["message"], url
    assert api.get("/v1/batches").json()["batches"] == []
    assert Listener.received == []


def finished_batch(api: httpx.Client, strict: LocalStack) -> str:
    """A batch (one undecodable input) that has finished, with no webhook of its own."""
    S3Storage(strict.settings(Settings())).put(
        BUCKET, "junk.jpg", b"not a photo", content_type="image/jpeg"
    )
    body = {"uris": [f"s3://{BUCKET}/junk.jpg"], "output": f"s3://{BUCKET}/out/"}
    reply = api.post("/v1/batches", json=body)
    assert reply.status_code == 201, reply.text
    batch_id: str = reply.json()["batch_id"]
    deadline = time.monotonic() + 120
    while not api.get(f"/v1/batches/{batch_id}").json()["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return batch_id


def test_a_private_url_planted_in_redis_is_refused_at_send(
    api: httpx.Client, strict: LocalStack, listener: int
) -> None:
    batch_id = finished_batch(api, strict)
    client = redis.Redis.from_url(strict.redis_url, decode_responses=True)
    app = create_app(strict.settings())
    closed = free_port()
    planted = [
        f"http://127.0.0.1:{listener}/hook",  # open
        f"http://127.0.0.1:{closed}/hook",  # closed
        f"http://[::ffff:127.0.0.1]:{listener}/hook",
        f"http://2130706433:{listener}/hook",
        f"http://localhost:{listener}/hook",
    ]
    errors = []
    for url in planted:
        fields = {"webhook_url": url, "webhook_status": "pending", "webhook_attempts": "0"}
        client.hset(batch_key(batch_id), mapping=fields)
        send_webhook(app, batch_id)
        deadline = time.monotonic() + 60
        while client.hget(batch_key(batch_id), "webhook_status") == "pending":
            assert time.monotonic() < deadline, url
            time.sleep(0.2)
        record = client.hgetall(batch_key(batch_id))
        assert (record["webhook_status"], record["webhook_attempts"]) == ("failed", "1"), url
        errors.append(record["webhook_error"])
        webhook = api.get(f"/v1/batches/{batch_id}").json()["webhook"]
        assert webhook == {"status": "failed", "attempts": 1}
    assert errors == [REFUSED] * len(planted)  # open or closed: one answer, nothing to scan with
    assert Listener.received == []
