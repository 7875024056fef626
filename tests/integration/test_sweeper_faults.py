"""The maintenance sweep repairs what a crash strands, on real processes.

One stack for the module (redis-server, the local S3 server) and worker processes that sweep
every second. Each test makes a real process die where a crash would strand something: between
the step that finishes a batch and sending its webhook, in the middle of creating a batch and of
sending its messages, and with an image running whose message is then lost. The sweep waits for
time to pass (a webhook due for 5 minutes, a lease lapsed for a minute, an image running past the
visibility timeout): the tests date the sweep's index entries back instead of waiting.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import redis
from PIL import Image

from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import (
    CREATING_KEY,
    RUNNING_KEY,
    SENDING_KEY,
    WEBHOOKS_DUE_KEY,
    BatchStatus,
    batch_key,
    image_key,
)
from infra.storage import S3Storage
from infra.webhooks import delivery_id
from producer.client import Client
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

BUCKET = "swept"
SWEEPING = {"BLURQ_SWEEP_INTERVAL": "1", "BLURQ_WEBHOOK_ALLOW_PRIVATE": "true"}
PARAMS = BlurParams(model="u2netp", strength=30)
MID_IMAGE = ("matting", "foreground", "bokeh")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = tmp_path_factory.mktemp("sweeper")
    with LocalStack(workers=0, flower=False, api=False, log_dir=log_dir) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    storage = S3Storage(stack.settings(Settings()))
    storage.ensure_bucket(BUCKET)
    rng = np.random.default_rng(4)
    for name, size in (("0", (48, 64)), ("big", (1500, 2000))):  # big: long enough to catch
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, "JPEG")
        storage.put(BUCKET, f"in/{name}.jpg", buffer.getvalue(), content_type="image/jpeg")
    return Client(stack.settings(Settings()), storage=storage)


@pytest.fixture
def worker(stack: LocalStack) -> Iterator[LocalStack]:
    """One sweeping worker, stopped after the test."""
    stack.start_worker("sweeping", SWEEPING)
    stack.wait_for_workers(1, timeout=180)
    yield stack
    stop(stack, "sweeping")


def stop(stack: LocalStack, name: str) -> None:
    process = stack.processes.pop(name)
    process.terminate()
    process.wait(timeout=60)


def in_child(stack: LocalStack, code: str) -> int:
    """Run code in a Python child with the stack's settings; its exit status (-9: SIGKILL)."""
    prelude = (
        "import os, signal\nfrom infra.settings import Settings\nfrom producer.client import "
        "Client\nfrom infra.publish import Publisher\nsettings = Settings()\n"
        "def die(*_):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run([sys.executable, "-c", prelude + code], env=stack.environment())
    return child.returncode


def backdate(client: Client, key: str, member: str, seconds: float) -> None:
    client.status_store.redis.zadd(key, {member: time.time() - seconds})


def until(check: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


class Receiver(BaseHTTPRequestHandler):
    """Records each POST's headers and body."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_webhook_whose_sender_died_after_the_batch_finished_is_sent(
    stack: LocalStack, client: Client, worker: LocalStack
) -> None:
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    meta = {"output": f"s3://{BUCKET}/hooked/", "params": "{}", "webhook_url": url}
    assert client.status_store.create_batch("hooked", [("0", f"s3://{BUCKET}/in/0.jpg")], meta)
    client.status_store.start("hooked", "0", "w")
    # The process that finishes the batch dies between the Lua step and sending the task.
    finishing = (
        "from infra.status import StatusStore\n"
        "store = StatusStore.from_url(settings.redis_url, ttl=3600, max_deliveries=3, "
        "on_complete=die)\n"
        "store.complete('hooked', '0', timings={}, output='s3://swept/hooked/0.jpg')\n"
    )
    try:
        assert in_child(stack, finishing) == -signal.SIGKILL
        batch = client.status_store.batch("hooked")
        assert batch is not None and batch.webhook_status == "pending" and not Receiver.received
        backdate(client, WEBHOOKS_DUE_KEY, "hooked", 301)  # as if due for five minutes
        until(lambda: Receiver.received, "the sweep never sent the webhook")
    finally:
        server.shutdown()
        server.server_close()
    headers, body = Receiver.received[0]
    assert headers["X-Blurq-Delivery"] == json.loads(body)["delivery_id"] == delivery_id(batch)
    until(lambda: client.status("hooked").webhook_status == "delivered", "not delivered")
    assert client.status_store.redis.zscore(WEBHOOKS_DUE_KEY, "hooked") is None


def test_an_interrupted_creation_is_dropped_and_a_stopped_sender_taken_over(
    stack: LocalStack, client: Client, worker: LocalStack
) -> None:
    creating = (
        "from infra.status import StatusStore\n"
        "store = StatusStore.from_url(settings.redis_url, ttl=3600, max_deliveries=3)\n"
        "def pairs():\n"
        "    for n in range(1500):\n"
        "        yield f'{n:06d}', 's3://swept/in/0.jpg'\n"
        "    die()\n"
        "store.create_batch('dead', pairs(), {'output': 's3://swept/dead/'})\n"
    )
    assert in_child(stack, creating) == -signal.SIGKILL
    redis_client = client.status_store.redis
    assert redis_client.exists("blurq:image:dead:000000")
    backdate(client, CREATING_KEY, "dead", 61)
    until(lambda: not redis_client.exists("blurq:image:dead:000000"), "never dropped")
    assert list(redis_client.scan_iter("blurq:*dead*")) == []
    # 1,100 images (missing objects fail fast, each a real message): the sender dies after its
    # first chunk of 1,000, and the sweep sends the other 100.
    sending = (
        "class Dying(Publisher):\n"
        "    def push(self, queue, values):\n"
        "        if getattr(self, 'pushed', False):\n"
        "            die()\n"
        "        self.pushed = True\n"
        "        super().push(queue, values)\n"
        "client = Client(settings, publisher=Dying.from_url(settings.broker))\n"
        "uris = [f's3://swept/missing/{n}.jpg' for n in range(1100)]\n"
        "client.submit(uris=uris, output='s3://swept/stopped/', batch_id='stopped')\n"
    )
    assert in_child(stack, sending) == -signal.SIGKILL
    batch = client.status("stopped")
    assert (batch.total, batch.submitted, batch.sent) == (1100, False, 1000)
    redis_client.hset(batch_key("stopped"), "sending_at", str(time.time() - 61))
    backdate(client, SENDING_KEY, "stopped", 61)
    final: BatchStatus = until(
        lambda: (found := client.status("stopped")).finished and found, "not finished", 300
    )
    assert final.failed == 1100 and final.submitted  # each image got its message, once
    images = client.images("stopped")
    assert {image.deliveries for image in images} == {1}
    assert all(image.error.endswith("not found (NoSuchKey)") for image in images)


def test_a_running_image_whose_message_was_lost_is_sent_again(
    stack: LocalStack, client: Client
) -> None:
    doomed = stack.start_worker("doomed", SWEEPING)
    stack.wait_for_workers(1, timeout=180)
    uris = [f"s3://{BUCKET}/in/big.jpg"]
    batch = client.submit(uris=uris, output=f"s3://{BUCKET}/lost/", batch_id="lost", params=PARAMS)

    def mid_image() -> bool:
        image = client.status_store.image(batch, "000000")
        return image is not None and image.stage in MID_IMAGE

    until(mid_image, "the image never got to its middle", 180)
    children = Path(f"/proc/{doomed.pid}/task/{doomed.pid}/children").read_text()
    pool = [int(pid) for pid in children.split()]
    for pid in (doomed.pid, *pool):
        os.kill(pid, signal.SIGSTOP)  # frozen with the image running: nothing is acknowledged
    broker = redis.Redis.from_url(client.settings.broker, decode_responses=True)
    member = f"{batch}:000000"
    tags = [tag for tag, raw in broker.hgetall("unacked").items() if member in raw]
    assert tags, "the running image's message is not unacknowledged"
    broker.hdel("unacked", *tags)  # lost, as when a late reject reaches a recovered broker
    broker.zrem("unacked_index", *tags)
    for pid in (doomed.pid, *pool):
        os.kill(pid, signal.SIGKILL)
    stack.processes.pop("doomed").wait(timeout=30)
    stack.start_worker("rescuer", SWEEPING)
    backdate(client, RUNNING_KEY, member, client.settings.visibility_timeout + 61)
    try:
        final = client.wait(batch, timeout=300)
    finally:
        stop(stack, "rescuer")
    assert (final.done, final.failed) == (1, 0)
    image = client.status_store.image(batch, "000000")
    assert image is not None and image.deliveries == 2  # counted: poison is still bounded
    assert str(client.status_store.redis.hget(image_key(batch, "000000"), "worker")).startswith(
        "rescuer@"
    )
    assert client.status_store.redis.zcard(RUNNING_KEY) == 0
