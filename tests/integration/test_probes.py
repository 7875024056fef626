"""The health checks that Kubernetes and compose probe, on real processes.

The API's ``/healthz`` and ``/livez`` over HTTP, and a real Celery worker's heartbeat file, read
with the very probe command that infra/k8s renders: fresh while the worker consumes, stale while
its broker does not answer, fresh again once it does.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from producer.local.stack import LocalStack, free_port
from tests.unit.test_kubernetes import heartbeat_probe_passes as probe

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Redis, S3 and the API; no workers, no Flower."""
    with LocalStack(workers=0, flower=False, log_dir=tmp_path_factory.mktemp("probes")) as stack:
        yield stack


def test_healthz_and_livez_answer_without_a_key(small: LocalStack) -> None:
    healthy = httpx.get(f"{small.api_url}/healthz", timeout=10)
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok", "checks": {"redis": "ok", "broker": "ok"}}
    assert httpx.get(f"{small.api_url}/livez", timeout=10).json() == {"status": "ok"}


def test_healthz_is_503_and_livez_200_when_redis_does_not_answer(small: LocalStack) -> None:
    port, nowhere = free_port(), f"redis://127.0.0.1:{free_port()}/0"
    argv = [sys.executable, "-m", "producer.cli", "api", "--port", str(port)]
    api = small._spawn("api-without-redis", argv, {"BLURQ_REDIS_URL": nowhere})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/livez"), 60)
        assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
        reply = httpx.get(f"{url}/healthz", timeout=10)
        assert reply.status_code == 503 and reply.json()["status"] == "unavailable"
        checks = reply.json()["checks"]
        assert checks["redis"].startswith("unreachable") and checks["broker"] != "ok"
        assert "127.0.0.1" not in reply.text  # says what, not where
    finally:
        api.terminate()
        api.wait(30)
        del small.processes["api-without-redis"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def age(heartbeat: Path) -> float:
    return time.time() - heartbeat.stat().st_mtime


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.2)


def test_the_heartbeat_follows_the_broker_and_a_webhook_worker_loads_no_onnxruntime(
    small: LocalStack,
) -> None:
    assert small.log_dir is not None
    heartbeat = small.log_dir / "beats" / "heartbeat"
    argv = [sys.executable, "-m", "producer.cli", "worker", "--queues", "webhooks"]
    worker = small._spawn("webhooks", [*argv, "--heartbeat-file", str(heartbeat)])
    try:
        wait_for(heartbeat.exists, 60)
        time.sleep(3)
        assert probe(heartbeat) and age(heartbeat) < 3  # beats every 2 s
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "python" in maps and "onnxruntime" not in maps
        redis = small.processes["redis"]
        redis.send_signal(signal.SIGSTOP)  # the broker stops answering
        try:
            time.sleep(8)
            frozen = heartbeat.stat().st_mtime
            time.sleep(6)
            assert heartbeat.stat().st_mtime == frozen and age(heartbeat) > 6
        finally:
            redis.send_signal(signal.SIGCONT)
        wait_for(lambda: age(heartbeat) < 2, 60)
        assert age(heartbeat) < 2 and probe(heartbeat)
    finally:
        worker.terminate()
        worker.wait(30)
        del small.processes["webhooks"]
