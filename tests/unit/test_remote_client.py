"""producer.remote.ApiClient against a small HTTP server on loopback that answers as scripted.

The real API is exercised in tests/integration/test_remote.py; here the server plays what is hard
to provoke there on cue: 503 and 429 with Retry-After, an HTTP-date Retry-After, answers that are
not the API's, a missing route, a closed port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from infra.errors import ApiRefused, ApiUnavailable
from infra.webhooks import signed_headers
from producer.local.stack import free_port
from producer.remote import ApiClient, verify_webhook

Answer = tuple[int, dict[str, str], bytes]


def batch_body(batch_id: str = "b1") -> bytes:
    counts = {"queued": 1, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    batch = {
        "batch_id": batch_id,
        "state": "queued",
        "total": 1,
        "counts": counts,
        "finished": False,
        "cancelled": False,
        "rate": 0.0,
        "eta_seconds": None,
        "params": {},
        "output": "s3://o/",
        "queue": "interactive",
        "created_at": 1.0,
        "started_at": None,
        "finished_at": None,
        "webhook": None,
    }
    return json.dumps(batch).encode()


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class Script:
    """The answers to give, in order, and what came in (time, method, path, headers, body)."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.seen: list[tuple[float, str, str, dict[str, str], bytes]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            script.seen.append(
                (time.monotonic(), self.command, self.path, dict(self.headers), body)
            )
            status, headers, payload = script.answers.pop(0)
            self.send_response(status)
            for name, value in {"content-type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def test_503_and_429_are_retried_after_retry_after_with_one_idempotency_key(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers = [
        (503, {"retry-after": "1"}, error_body("unavailable", "Redis is restarting")),
        (429, {"retry-after": formatdate(time.time() + 4, usegmt=True)}, error_body("q", "slow")),
        (201, {}, batch_body("b1")),
    ]
    with ApiClient(url, "k" * 20) as api:
        batch = api.submit(uris=["s3://i/a.jpg"], output="s3://o/", params={"strength": 40})
    assert batch.batch_id == "b1" and len(script.seen) == 3
    times = [seen[0] for seen in script.seen]
    assert times[1] - times[0] >= 1.0  # Retry-After in seconds
    assert times[2] - times[1] >= 1.5  # an HTTP date 4 s ahead of the script, 1 s after it
    keys = {seen[3]["Idempotency-Key"] for seen in script.seen}
    assert len(keys) == 1 and len(keys.pop()) == 32  # a fresh key, the same on every attempt
    sent = json.loads(script.seen[0][4])
    assert sent == {"output": "s3://o/", "uris": ["s3://i/a.jpg"], "params": {"strength": 40}}
    assert all(seen[3]["X-API-Key"] == "k" * 20 for seen in script.seen)


def test_a_long_retry_after_is_not_waited_for(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(429, {"retry-after": "600"}, error_body("quota_exceeded", "10 per minute"))]
    started = time.monotonic()
    with ApiClient(url, "key", max_wait=60) as api, pytest.raises(ApiUnavailable) as caught:
        api.batch("b1")
    assert time.monotonic() - started < 5 and len(script.seen) == 1
    assert caught.value.status == 429 and caught.value.retry_after == 600
    assert caught.value.code == "quota_exceeded" and str(caught.value) == "10 per minute"


def test_retries_end_after_max_attempts(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [(503, {"retry-after": "0"}, error_body("unavailable", "down"))] * 3
    with ApiClient(url, "key", max_attempts=3) as api, pytest.raises(ApiUnavailable, match="down"):
        api.batch("b1")
    assert len(script.seen) == 3


def test_errors_keep_the_api_s_code_and_message(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers = [
        (404, {}, error_body("batch_not_found", "no batch 'x' (never submitted, or expired)")),
        (502, {"content-type": "text/html"}, b"<html>bad gateway</html>"),
        (404, {}, error_body("not_found", "Not Found")),  # a route this API does not have
    ]
    with ApiClient(url, "key") as api:
        with pytest.raises(ApiRefused) as missing:
            api.batch("x")
        assert (missing.value.status, missing.value.code) == (404, "batch_not_found")
        assert str(missing.value) == "no batch 'x' (never submitted, or expired)"
        with pytest.raises(ApiRefused, match="HTTP 502: <html>bad gateway") as foreign:
            api.batch("x")
        assert foreign.value.code == "http_502"
        with pytest.raises(ApiRefused, match="cannot retry batches") as old:
            api.retry("x")
        assert old.value.code == "not_supported"
    assert script.seen[2][1:3] == ("POST", "/v1/batches/x/retry")


def test_pages_are_followed_to_the_end(server: tuple[str, Script]) -> None:
    url, script = server
    image = {
        "input": "s3://i/a.jpg",
        "state": "done",
        "error": "",
        "output": "s3://o/a.jpg",
        "deliveries": 1,
        "stage": "",
        "timings": {},
        "started_at": None,
        "finished_at": None,
    }
    pages = [
        {
            "images": [{**image, "image_id": "000000"}, {**image, "image_id": "000001"}],
            "next_offset": 2,
        },
        {"images": [{**image, "image_id": "000002"}], "next_offset": None},
    ]
    script.answers = [(200, {}, json.dumps(page).encode()) for page in pages]
    with ApiClient(url, "key") as api:
        found = [found.image_id for found in api.images("b1", state="done", page_size=2)]
    assert found == ["000000", "000001", "000002"]
    assert [seen[2] for seen in script.seen] == [
        "/v1/batches/b1/images?offset=0&limit=2&state=done",
        "/v1/batches/b1/images?offset=2&limit=2&state=done",
    ]


def test_an_unreachable_api_is_a_clear_transient_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    with ApiClient(url, "key", max_attempts=2) as api, pytest.raises(ApiUnavailable) as caught:
        api.batch("b1")
    assert caught.value.code == "unreachable" and f"cannot reach the API at {url}" in str(
        caught.value
    )
    with pytest.raises(ApiRefused, match="BLURQ_API_KEY"):
        ApiClient(url, "")


def test_webhook_signatures_verify_with_the_senders_format() -> None:
    body, url = b'{"batch_id":"b1"}', "https://hooks.example.com/blurq"
    headers = signed_headers("s" * 64, url, body)
    assert verify_webhook("s" * 64, url, body, headers)
    lower = {name.lower(): value for name, value in headers.items()}  # as frameworks pass them
    assert verify_webhook("s" * 64, url, body, lower)
    assert not verify_webhook("s" * 64, url, body + b" ", headers)
    assert not verify_webhook("s" * 64, url + "x", body, headers)
    assert not verify_webhook("t" * 64, url, body, headers)
    old = signed_headers("s" * 64, url, body, now=time.time() - 3600)
    assert not verify_webhook("s" * 64, url, body, old)
