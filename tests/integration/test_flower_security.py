"""Flower as the local stack runs it, probed as an attacker would: no way in without its password.

Also ``blurq flower`` itself (no credentials, weak ones: it refuses to start) and ``blurq dev up``
(the credentials it prints are the ones that work).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

EVIL = "https://evil.example"
READS = ["/", "/workers", "/tasks", "/broker", "/api/workers", "/api/tasks", "/api/task/types"]
WRITES = [
    "/api/worker/pool/shrink/worker1@host",
    "/api/worker/queue/cancel-consumer/worker1@host?queue=bulk",
    "/api/task/send-task/blurq.blur_image",
    "/api/task/revoke/00000000-0000-0000-0000-000000000000",
]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def flower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Redis, S3 and Flower of a local stack, started as dev up and the tests start them."""
    log_dir = tmp_path_factory.mktemp("flower")
    with LocalStack(workers=0, api=False, log_dir=log_dir) as stack:
        yield stack


def wrong_credentials(stack: LocalStack) -> list[dict[str, str]]:
    """Nothing, a wrong password, the password under another user, a bearer token, junk."""
    return [
        {},
        basic(stack.flower_user, "not-the-password-at-all"),
        basic("admin", stack.flower_password),
        basic(stack.flower_user, stack.flower_password[:-1]),
        {"Authorization": f"Bearer {stack.flower_password}"},
        {"Authorization": "Basic !!!"},
    ]


@pytest.mark.parametrize("path", READS)
def test_reads_need_the_password(flower: LocalStack, path: str) -> None:
    for headers in wrong_credentials(flower):
        reply = httpx.get(flower.flower_url + path, headers=headers, timeout=30)
        assert reply.status_code == 401, (headers, reply.text[:200])
        assert "blurq" not in reply.text  # nothing of the broker's state
    assert httpx.get(flower.flower_url + path, headers=flower.flower_headers, timeout=30).is_success


@pytest.mark.parametrize("path", WRITES)
def test_control_and_send_task_need_the_password(flower: LocalStack, path: str) -> None:
    body = {"args": [{"batch_id": "stolen"}]}
    for headers in wrong_credentials(flower):
        reply = httpx.post(flower.flower_url + path, headers=headers, json=body, timeout=30)
        assert reply.status_code == 401, (headers, reply.text[:200])
    with redis.Redis.from_url(flower.redis_url) as client:
        assert client.llen("bulk") == 0  # nothing was sent


def test_a_page_in_the_developers_browser_gets_nothing_across_origins(flower: LocalStack) -> None:
    """Browsers replay cached basic-auth credentials: cross-site writes must still be refused."""
    shrink = f"{flower.flower_url}{WRITES[0]}"
    for cross_site in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}):
        reply = httpx.post(shrink, headers={**flower.flower_headers, **cross_site}, timeout=30)
        assert reply.status_code == 403, reply.text
    same = httpx.post(shrink, headers={**flower.flower_headers, "Origin": flower.flower_url})
    assert same.status_code == 404 and "Unknown worker" in same.text  # got past every check
    preflight = httpx.options(
        shrink, headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}, timeout=30
    )
    assert not any(name.lower().startswith("access-control") for name in preflight.headers)


def test_no_answer_allows_other_origins(flower: LocalStack) -> None:
    """No ``Access-Control-Allow-Origin``, on any path, signed in or not, asked from evil or not."""
    paths = [*READS, "/metrics", "/healthcheck", "/static/css/flower.css", "/no-such-page"]
    for path in paths:
        for headers in ({}, {"Origin": EVIL}, {**flower.flower_headers, "Origin": EVIL}):
            for method in ("GET", "OPTIONS"):
                reply = httpx.request(method, flower.flower_url + path, headers=headers, timeout=30)
                allowed = [name for name in reply.headers if name.lower().startswith("access-")]
                assert not allowed, (method, path, headers, dict(reply.headers))


def test_the_password_is_in_no_command_line(flower: LocalStack) -> None:
    """``ps`` shows every user each process's argv: Flower's and Redis's passwords stay out."""
    flower_pid = flower.processes["flower"].pid  # blurq flower exec'd Flower in place
    argv = Path(f"/proc/{flower_pid}/cmdline").read_bytes().split(b"\0")
    assert b"flower" in argv and any(arg.startswith(b"--port=") for arg in argv)
    for pid in (flower_pid, flower.processes["redis"].pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert flower.flower_password.encode() not in cmdline
        assert flower.redis_password.encode() not in cmdline
    # It went through the environment, which only the same user (and root) can read.
    environ = Path(f"/proc/{flower_pid}/environ").read_bytes().split(b"\0")
    assert f"FLOWER_BASIC_AUTH={flower.flower_user}:{flower.flower_password}".encode() in environ
    assert not any(entry.startswith(b"FLOWER_UNAUTHENTICATED_API=") for entry in environ)


def blurq_flower(*args: str, auth: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLURQ_", "FLOWER_"))}
    env["FLOWER_UNAUTHENTICATED_API"] = "true"  # what the old local stack set: no way round
    if auth is not None:
        env["BLURQ_FLOWER_BASIC_AUTH"] = auth
    argv = [sys.executable, "-m", "producer.cli", "flower", "--port", "1", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "auth", "says"),
    [
        ((), None, "Flower needs credentials: set BLURQ_FLOWER_BASIC_AUTH=user:password"),
        (("--address", "127.0.0.1"), "", "Flower needs credentials"),
        (("--address", "0.0.0.0"), None, "it never runs unauthenticated"),
        ((), "ops:short-password", "at least 16 characters"),
        (("--basic-auth", "ops:short"), None, "at least 16 characters"),
        ((), "no-colon-at-all-in-this-value", "must read user:password"),
        ((), ":a-password-without-a-user", "must read user:password"),
        ((), "ops:a-long-enough-pass,word", "may not contain a comma"),
    ],
)
def test_blurq_flower_refuses_to_start_without_good_credentials(
    args: tuple[str, ...], auth: str | None, says: str
) -> None:
    result = blurq_flower(*args, auth=auth)
    assert result.returncode != 0
    assert says in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_dev_up_prints_credentials_that_work(tmp_path: Path) -> None:
    """The exports and Flower's password that ``blurq dev up`` prints open its Redis and Flower."""
    argv = [sys.executable, "-m", "producer.cli", "dev", "up", "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLURQ_")}
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C stops everything" not in out.read_text():
            assert process.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        exports = dict(
            line.split("export ", 1)[1].split("=", 1)
            for line in out.read_text().splitlines()
            if line.startswith("  export ")
        )
        url = exports["BLURQ_REDIS_URL"]
        assert redis.Redis.from_url(url).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace(url.split("@")[0] + "@", "redis://")).ping()
        flower_url, credentials = exports["BLURQ_FLOWER_URL"], exports["BLURQ_FLOWER_BASIC_AUTH"]
        user, password = credentials.split(":", 1)
        assert len(password) >= 16 and f"password {password}" in out.read_text()
        tasks = f"{flower_url}/api/tasks"
        assert httpx.get(tasks, timeout=30).status_code == 401
        assert httpx.get(tasks, headers=basic(user, password), timeout=30).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
