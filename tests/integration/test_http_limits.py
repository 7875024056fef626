"""The HTTP edge on the real ``blurq api`` process, attacked as the issue's attacker did.

Bodies refused before they are read (the API's memory measured from /proc), failed keys throttled
per client address, huge previews refused from their header, query strings kept out of the
access log, and /metrics behind its token.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

from infra.settings import Settings
from infra.status import StatusStore
from infra.storage import S3Storage
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

MIB = 2**20
METRICS_TOKEN = "metrics-token-for-the-test-only"
ATTACKER = "127.0.0.9"  # a loopback address of its own, so its throttling touches no other test


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Redis, S3 and the real API process (no workers), with a metrics token."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLURQ_METRICS_TOKEN", METRICS_TOKEN)
        stack = LocalStack(workers=0, flower=False, log_dir=tmp_path_factory.mktemp("limits"))
        with stack:
            yield stack


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak so far) of a process, in KiB."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) for name, value in fields.items()}


def raw_request(
    stack: LocalStack, head: str, body: Iterator[bytes], source: str = "127.0.0.1"
) -> str:
    """Send a request head, then the body from another thread while reading the answer's head."""
    sock = socket.create_connection(
        ("127.0.0.1", stack.api_port), timeout=30, source_address=(source, 0)
    )
    sent = {"bytes": 0}

    def push() -> None:
        try:
            sock.sendall(head.encode())
            for chunk in body:
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
        except OSError:  # the server answered and closed: what the attacker gets
            pass

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        pusher.join(timeout=60)
        sock.close()
    return answer.decode("latin-1")


def megabytes(count: int, *, chunked: bool) -> Iterator[bytes]:
    block = b"x" * MIB
    for _ in range(count):
        yield b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    if chunked:
        yield b"0\r\n\r\n"


def head(path: str, *, length: int | None = None, key: str = "") -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    auth = f"X-API-Key: {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}{framing}\r\n\r\n"
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_200_mib_body_without_a_key_is_refused_unread(api: LocalStack, chunked: bool) -> None:
    pid = api.processes["api"].pid
    before = memory_kib(pid)
    length = None if chunked else 200 * MIB
    answer = raw_request(api, head("/v1/batches", length=length), megabytes(200, chunked=chunked))
    after = memory_kib(pid)
    growth = (after["VmHWM"] - before["VmHWM"]) / 1024
    print(
        f"API peak memory {before['VmHWM'] / 1024:.0f} -> {after['VmHWM'] / 1024:.0f} MiB "
        f"(+{growth:.1f} MiB) for a 200 MiB {'chunked' if chunked else 'declared'} body"
    )
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert growth < 20, f"the API grew by {growth:.0f} MiB for a body it should not read"


def test_bodies_over_the_cap_are_413_with_a_key_too(api: LocalStack) -> None:
    declared = raw_request(api, head("/v1/batches", length=2 * MIB, key=api.api_key), iter(()))
    assert declared.startswith("HTTP/1.1 413"), declared[:200]
    pid = api.processes["api"].pid
    before = memory_kib(pid)["VmHWM"]
    chunked = raw_request(api, head("/v1/batches", key=api.api_key), megabytes(100, chunked=True))
    assert chunked.startswith("HTTP/1.1 413"), chunked[:200]
    assert memory_kib(pid)["VmHWM"] - before < 20 * 1024
    form = raw_request(api, head("/dashboard/session", length=5000), iter([b"k" * 5000]))
    assert form.startswith("HTTP/1.1 413"), form[:200]
    # Under the cap and with a key the body is read and judged: a JSON error, not a 413.
    small = httpx.post(
        f"{api.api_url}/v1/batches", content=b"{", headers={"X-API-Key": api.api_key}
    )
    assert small.status_code == 422


def test_300_wrong_keys_in_a_burst_are_throttled_for_that_address_only(api: LocalStack) -> None:
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    with httpx.Client(base_url=api.api_url, transport=transport, timeout=30) as attacker:

        def guess(number: int) -> int:
            key = {"X-API-Key": f"guess-{number:04d}-" + "x" * 24}
            if number % 2:
                return attacker.get("/v1/batches", headers=key).status_code
            return attacker.post("/v1/batches", json={}, headers=key).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(guess, range(300)))
        print(
            f"300 wrong keys in {time.monotonic() - started:.2f} s: "
            f"{answers.count(401)} x 401, {answers.count(429)} x 429"
        )
        assert set(answers) == {401, 429}
        assert answers.count(401) <= 20 + 8  # the limit, plus those already in flight
        refused = attacker.get("/v1/batches", headers={"X-API-Key": api.api_key})
        assert refused.status_code == 429  # the right key from the guessing address waits too
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["code"] == "too_many_failures"
        sign_in = attacker.post("/dashboard/session", data={"key": "wrong"})
        assert sign_in.status_code == 429
    honest = httpx.get(f"{api.api_url}/v1/batches", headers={"X-API-Key": api.api_key})
    assert honest.status_code == 200


def test_query_strings_stay_out_of_the_access_log(api: LocalStack) -> None:
    marker = "secret-in-a-query-string-0123456789"
    httpx.get(f"{api.api_url}/v1/batches?key={marker}", headers={"X-API-Key": api.api_key})
    httpx.get(f"{api.api_url}/openapi.json?token={marker}")
    assert api.log_dir is not None
    log = api.log_dir / "api.log"
    deadline = time.monotonic() + 10
    while "GET /openapi.json " not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert "GET /openapi.json " in text and "GET /v1/batches " in text
    assert marker not in text


def test_metrics_need_the_token_when_one_is_set(api: LocalStack) -> None:
    assert httpx.get(f"{api.api_url}/metrics").status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(f"{api.api_url}/metrics", headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    scraped = httpx.get(f"{api.api_url}/metrics", headers=right)
    assert scraped.status_code == 200 and "blurq_queue_depth" in scraped.text
    assert json.loads(httpx.get(f"{api.api_url}/metrics").text)["detail"]


def png(mode: str, side: int) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (side, side)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def test_a_10000_square_png_preview_is_refused_from_its_header(api: LocalStack) -> None:
    storage = S3Storage(api.settings(Settings()))
    storage.ensure_bucket("previews")
    storage.put("previews", "in/huge.png", png("RGB", 10_000), content_type="image/png")
    storage.put("previews", "in/big.png", png("RGB", 6_000), content_type="image/png")
    store = StatusStore(
        redis.Redis.from_url(api.redis_url, decode_responses=True), ttl=600, max_deliveries=3
    )
    images = [("000000", "s3://previews/in/huge.png"), ("000001", "s3://previews/in/big.png")]
    assert store.create_batch("previews", images, {"output": "s3://previews/out/", "params": "{}"})
    pid, key = api.processes["api"].pid, {"X-API-Key": api.api_key}
    url = f"{api.api_url}/dashboard/thumbnails/previews"
    for image, code, pixels in (("000000", 422, "100 MP"), ("000001", 200, "36 MP")):
        before = memory_kib(pid)["VmHWM"]
        answer = httpx.get(f"{url}/{image}/input", headers=key, timeout=60)
        growth = (memory_kib(pid)["VmHWM"] - before) / 1024
        print(f"{pixels} PNG preview: {answer.status_code}, API peak memory +{growth:.0f} MiB")
        assert answer.status_code == code, answer.text
        if code == 422:
            assert "above the preview limit" in answer.text and growth < 30
        else:  # one copy of the decoded pixels (36 MP x 4 bytes = 137 MiB), not two
            assert growth < 200
    assert Image.open(io.BytesIO(answer.content)).size == (160, 160)
