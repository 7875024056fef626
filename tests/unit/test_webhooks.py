"""Webhook signing and verification, the body, and the URL check."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from infra.errors import InvalidJob
from infra.status import BatchStatus
from infra.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_url,
    payload,
    signed_headers,
    verify,
)

SECRET = "s3cret"
BODY = b'{"batch_id":"b","total":3}'


def test_signature_is_an_hmac_of_timestamp_and_body() -> None:
    headers = signed_headers(SECRET, BODY, now=1_700_000_000.7)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert verify(SECRET, BODY, "1700000000", headers[SIGNATURE_HEADER], now=1_700_000_100)


def test_a_bad_signature_fails_verification() -> None:
    headers = signed_headers(SECRET, BODY, now=1_700_000_000)
    timestamp, good = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    now = 1_700_000_001
    assert not verify(SECRET, BODY + b" ", timestamp, good, now=now)  # body changed
    assert not verify("other", BODY, timestamp, good, now=now)  # wrong secret
    assert not verify(SECRET, BODY, "1700000001", good, now=now)  # timestamp changed
    assert not verify(SECRET, BODY, timestamp, good.replace("sha256=", "sha1="), now=now)
    assert not verify("", BODY, timestamp, good, now=now)
    assert not verify(SECRET, BODY, "soon", good, now=now)


def test_an_old_request_is_refused_as_a_replay() -> None:
    headers = signed_headers(SECRET, BODY, now=1_700_000_000)
    args = (SECRET, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER])
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
        "batch_id": "b",
        "total": 5,
        "done": 3,
        "failed": 1,
        "cancelled": 1,
        "finished_at": 9.5,
        "output": "s3://out/x/",
    }


@pytest.mark.parametrize(
    "url", ["ftp://host/x", "file:///etc/passwd", "s3://b/k", "http:///nohost", "/relative"]
)
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidJob, match="http"):
        check_url(url)
    assert check_url("https://hooks.example.com/blurq?x=1") == "https://hooks.example.com/blurq?x=1"


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
