"""Webhook signing and verification, the body, and the URL check."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from dataclasses import replace
from typing import Any

import pytest

from infra.errors import InvalidJob
from infra.status import BatchStatus, tenant_of
from infra.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_url,
    delivery_id,
    payload,
    secret_for,
    signed_headers,
    verify,
)

SECRET = "s3cret"
URL = "https://hooks.example.com/blurq?x=1"
BODY = b'{"batch_id":"b","total":3}'


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name resolves to one public address (this machine may have no DNS)."""

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_signature_is_an_hmac_of_timestamp_url_and_body() -> None:
    headers = signed_headers(SECRET, URL, BODY, now=1_700_000_000.7)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    signed = b"1700000000\n" + URL.encode() + b"\n" + BODY
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert verify(SECRET, URL, BODY, "1700000000", headers[SIGNATURE_HEADER], now=1_700_000_100)


def test_a_bad_signature_fails_verification() -> None:
    headers = signed_headers(SECRET, URL, BODY, now=1_700_000_000)
    timestamp, good = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    now = 1_700_000_001
    assert verify(SECRET, URL, BODY, timestamp, good, now=now)
    assert not verify(SECRET, URL, BODY + b" ", timestamp, good, now=now)  # body changed
    assert not verify("other", URL, BODY, timestamp, good, now=now)  # wrong secret
    assert not verify(SECRET, URL, BODY, "1700000001", good, now=now)  # timestamp changed
    assert not verify(SECRET, URL, BODY, timestamp, good.replace("sha256=", "sha1="), now=now)
    assert not verify("", URL, BODY, timestamp, good, now=now)
    assert not verify(SECRET, URL, BODY, "soon", good, now=now)


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://other.example.net/blurq?x=1",  # another receiver
        "https://hooks.example.com/blurq?x=2",  # the same receiver, another endpoint
        "http://hooks.example.com/blurq?x=1",  # another scheme
        "https://hooks.example.com/blurq?x=1\n",  # a newline can't shift the boundaries
    ],
)
def test_a_notice_captured_at_one_receiver_fails_at_another(elsewhere: str) -> None:
    headers = signed_headers(SECRET, URL, BODY, now=1_700_000_000)
    args = (BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
    assert verify(SECRET, URL, *args, now=1_700_000_001)
    assert not verify(SECRET, elsewhere, *args, now=1_700_000_001)


def test_each_tenant_has_its_own_derived_secret() -> None:
    shop_a, shop_b = secret_for(SECRET, "shop-a"), secret_for(SECRET, "shop-b")
    assert len({shop_a, shop_b, secret_for(SECRET, "default"), SECRET}) == 4
    assert shop_a == secret_for(SECRET, "shop-a")  # derived, so nothing needs storing
    assert shop_a != secret_for("another-deployment", "shop-a")
    expected = hmac.new(SECRET.encode(), b"blurq-webhook:shop-a", hashlib.sha256).hexdigest()
    assert shop_a == expected
    headers = signed_headers(shop_a, URL, BODY, now=1_700_000_000)
    args = (URL, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
    assert verify(shop_a, *args, now=1_700_000_001)
    assert not verify(shop_b, *args, now=1_700_000_001)  # one tenant can't forge another's


def test_an_old_request_is_refused_as_a_replay() -> None:
    headers = signed_headers(SECRET, URL, BODY, now=1_700_000_000)
    args = (SECRET, URL, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
    assert verify(*args, now=1_700_000_299)
    assert not verify(*args, now=1_700_000_301)


def test_payload_carries_the_batch_outcome() -> None:
    batch = BatchStatus(
        "b",
        total=5,
        queued=0,
        running=0,
        done=3,
        failed=1,
        created_at=1.0,
        started_at=2.0,
        finished_at=9.5,
        submitted=True,
        output="s3://out/x/",
        cancelled=1,
    )
    assert json.loads(payload(batch)) == {
        "delivery_id": delivery_id(batch),
        "batch_id": "b",
        "total": 5,
        "done": 3,
        "failed": 1,
        "cancelled": 1,
        "finished_at": 9.5,
        "output": "s3://out/x/",
    }
    # One id per batch's end, the same for every attempt: receivers drop repeats by it.
    again = replace(batch, webhook_attempts=3)
    assert delivery_id(again) == delivery_id(batch)
    assert delivery_id(replace(batch, finished_at=9.6)) != delivery_id(batch)
    assert delivery_id(replace(batch, batch_id="c")) != delivery_id(batch)
    headers = signed_headers("s", "https://x.example/", b"{}", delivery=delivery_id(batch))
    assert headers["X-Blurq-Delivery"] == delivery_id(batch)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "file:///etc/passwd",
        "data:text/plain,hi",
        "gopher://host/x",
        "s3://b/k",
        "http:///nohost",
        "/relative",
        "http://host:99999/",
        "http://host:port/",
        "http://hooks.example.com/a b",
        "http://hooks.example.com/\r\nX-Injected: 1",
        "http://h\u00f6oks.example.com/",
        "https://hooks.example.com/" + "x" * 2000,
    ],
)
def test_only_absolute_http_urls_are_accepted(url: str, public_dns: None) -> None:
    with pytest.raises(InvalidJob, match="http"):
        check_url(url, allow_private=False)
    assert check_url(URL, allow_private=False) == URL


def test_credentials_in_the_url_are_refused(public_dns: None) -> None:
    with pytest.raises(InvalidJob, match="credentials"):
        check_url("https://user:pw@hooks.example.com/", allow_private=False)


def test_the_tenant_and_the_batch_id_it_knows() -> None:
    batch = BatchStatus(
        "shop-a/spring-01", 1, 0, 0, 1, 0, 1.0, None, 2.0, submitted=True, output="s3://o/"
    )
    assert json.loads(payload(batch))["batch_id"] == "spring-01"
    assert tenant_of(batch.batch_id) == "shop-a"
    bare = BatchStatus("spring-01", 1, 0, 0, 1, 0, 1.0, None, 2.0, submitted=True, output="")
    assert (
        tenant_of(bare.batch_id) == "default"
        and json.loads(payload(bare))["batch_id"] == "spring-01"
    )


def test_the_webhook_task_imports_no_image_code() -> None:
    """A process that sends webhooks never loads the pipeline, onnxruntime or OpenCV."""
    import subprocess
    import sys

    code = (
        "import sys, workers.webhooks; "
        "print(sorted(m for m in ('workers.pipeline', 'workers.tasks', 'onnxruntime', 'cv2') "
        "if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "[]"
