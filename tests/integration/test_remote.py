"""Remote use on the real local stack: the Python client and ``blurq ... --api`` over HTTP.

The CLI runs as a process in two modes: direct (Redis and the broker) and remote (``--api``,
the key in BLURQ_API_KEY, and a Redis address that leads nowhere, so anything it printed came
over HTTP). The same commands must print the same lines and exit with the same codes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from infra.errors import ApiRefused
from infra.settings import Settings
from infra.storage import S3Storage
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack, free_port
from producer.remote import ApiClient

pytestmark = pytest.mark.integration

BUCKET = "remote"


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[ApiClient]:
    storage = S3Storage(stack.settings(Settings()))
    storage.ensure_bucket(BUCKET)
    for sample in SAMPLES[:3]:
        photo = sample.jpeg(long_side=320)
        storage.put(BUCKET, f"in/{sample.name}.jpg", photo, content_type="image/jpeg")
    with ApiClient(stack.api_url, stack.api_key) as client:
        yield client


def inputs() -> list[str]:
    return [f"s3://{BUCKET}/in/{sample.name}.jpg" for sample in SAMPLES[:3]]


def blurq(stack: LocalStack, *args: str, remote: bool, key: str | None = None) -> tuple[int, str]:
    """Run the blurq command; its exit code and its output (stdout and stderr)."""
    env = stack.environment()
    if remote:
        env["BLURQ_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # leads nowhere
        env["BLURQ_API_KEY"] = stack.api_key if key is None else key
        args = (*args, "--api", stack.api_url)
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_client_submits_waits_and_pages_through_results(api: ApiClient) -> None:
    uris = [*inputs(), f"s3://{BUCKET}/in/missing.jpg"]
    batch = api.submit(uris=uris, output=f"s3://{BUCKET}/out/", params={"strength": 45})
    assert len(batch.batch_id) == 32 and batch.total == 4  # an idempotency key by default
    final = api.wait(batch.batch_id, timeout=300, poll=0.5)
    assert final.finished and (final.counts.done, final.counts.failed) == (3, 1)
    images = list(api.images(batch.batch_id, page_size=3))  # two pages
    assert [image.image_id for image in images] == ["000000", "000001", "000002", "000003"]
    done = list(api.images(batch.batch_id, state="done"))
    assert all(image.output.startswith(f"s3://{BUCKET}/out/in/") for image in done)
    assert batch.batch_id in [found.batch_id for found in api.batches(page_size=1)]
    again = api.submit(
        uris=uris, output=f"s3://{BUCKET}/out/", params={"strength": 45}, batch_id=batch.batch_id
    )
    assert again.total == 4 and again.counts.done == 3  # the same batch, nothing sent twice
    with pytest.raises(ApiRefused) as conflict:
        api.submit(uris=uris, output=f"s3://{BUCKET}/other/", batch_id=batch.batch_id)
    assert conflict.value.status == 409 and conflict.value.code == "idempotency_conflict"


def test_remote_commands_print_what_direct_ones_do(stack: LocalStack) -> None:
    submit = ["submit", *inputs(), f"s3://{BUCKET}/in/gone.jpg", "--out", f"s3://{BUCKET}/cli/"]
    code, out = blurq(stack, *submit, "--batch-id", "cli-1", "--watch", remote=True)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "cli-1", out
    assert "] 4/4  done 3  failed 1" in lines[-2]
    assert lines[-1] == f"1 failed: blurq status cli-1 --api {stack.api_url} --failed"
    for command in (["status", "cli-1", "--failed"], ["images", "cli-1"], ["watch", "cli-1"]):
        direct, (code, out) = (
            blurq(stack, *command, remote=False),
            blurq(stack, *command, remote=True),
        )
        remote = code, out.replace(f" --api {stack.api_url}", "")  # the hint repeats the mode
        assert direct == remote and direct[0] == 0, (command, direct, remote)
    code, failed = blurq(stack, "images", "cli-1", "--state", "failed", remote=True)
    assert code == 0 and "\tfailed\ts3://remote/in/gone.jpg\t" in failed and "NoSuchKey" in failed
    code, out = blurq(stack, "cancel", "cli-1", remote=True)
    assert code == 1 and "already finished" in out


def test_errors_are_clear_and_exit_as_in_direct_mode(stack: LocalStack) -> None:
    direct = blurq(stack, "status", "nope", remote=False)
    assert blurq(stack, "status", "nope", remote=True) == direct
    assert direct == (1, "Error: no batch 'nope' (never submitted, or expired)\n")
    code, out = blurq(stack, "status", "nope", remote=True, key="wrong-key-" * 3)
    assert code == 1 and "invalid API key" in out
    code, out = blurq(stack, "status", "nope", remote=True, key="")
    assert code == 2 and "set BLURQ_API_KEY" in out  # a usage error, as for a missing option
    code, out = blurq(stack, "status", "nope", "--tenant", "shop", remote=True)
    assert code == 2 and "--tenant is for direct mode" in out
    retried = blurq(stack, "retry", "nope", remote=True)
    assert retried == blurq(stack, "retry", "nope", remote=False) == direct
    argv = [sys.executable, "-m", "producer.cli", "status", "x", "--api"]
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {**stack.environment(), "BLURQ_API_KEY": "k" * 24}
    done = subprocess.run([*argv, nowhere], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"cannot reach the API at {nowhere}" in done.stderr
