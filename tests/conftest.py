"""Shared fixtures: real redis-server and S3 server processes, and the full local stack."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis
import uvicorn
from fastapi import FastAPI

from infra.settings import Settings
from infra.status import StatusStore
from infra.storage import S3Storage
from producer.local.stack import LocalStack, free_port

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
"""Where tests save what a person may want to look at (screenshots); ``--artifacts`` moves it."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--artifacts DIR``: where tests save screenshots and other artifacts."""
    parser.addoption("--artifacts", type=Path, default=ARTIFACTS, help="artifact directory")


@pytest.fixture(scope="session")
def artifacts(pytestconfig: pytest.Config) -> Path:
    """The artifact directory, created on first use."""
    directory: Path = pytestconfig.getoption("artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


ALLOW_PRIVATE_WEBHOOKS = "BLURQ_WEBHOOK_ALLOW_PRIVATE"
"""The development switch letting webhooks reach loopback (``infra.webhooks``)."""

SERVICE_FIXTURES = {"services", "settings", "redis_client", "status_store", "storage", "stack"}
"""Fixtures that start redis-server or the S3 server: a test using one is marked ``services``."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that need services; deselect gpu tests on a machine without CUDA."""
    for item in items:
        needs = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs or "integration" in item.keywords:
            item.add_marker(pytest.mark.services)
    if shutil.which("nvidia-smi"):
        return
    selected = [item for item in items if "gpu" not in item.keywords]
    deselected = [item for item in items if "gpu" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """redis-server and the local S3 server only (no workers), for unit tests of the adapters."""
    with LocalStack(workers=0, flower=False, log_dir=tmp_path_factory.mktemp("services")) as stack:
        yield stack


@pytest.fixture
def settings(services: LocalStack) -> Settings:
    """Settings pointing at the session's services, on Redis database 1."""
    return services.settings(Settings()).model_copy(
        update={"redis_url": services.redis_url.replace("/0", "/1")}
    )


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A Redis client on a database flushed before and after the test."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def status_store(redis_client: redis.Redis) -> StatusStore:
    """A status store on the flushed database, 3 deliveries allowed."""
    return StatusStore(redis_client, ttl=3600, max_deliveries=3)


@pytest.fixture
def storage(settings: Settings) -> S3Storage:
    """Storage on the local S3 server."""
    return S3Storage(settings)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack: Redis, S3, two Celery worker processes and Flower.

    Its webhooks may reach loopback (the development switch), where the tests' receivers listen;
    tests/integration/test_webhook_targets.py runs a stack without it.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ALLOW_PRIVATE_WEBHOOKS, "true")  # the children copy os.environ
        with LocalStack(workers=2, log_dir=tmp_path_factory.mktemp("stack")) as running:
            running.wait_for_workers(timeout=180)
            yield running


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """The app on a real uvicorn server in a thread (on port, or a free one); yields its base
    URL. Leaving stops it, ending open event streams after a second."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def serve() -> Callable[..., AbstractContextManager[str]]:
    """Serves an app on a real uvicorn server: ``with serve(app) as url: ...``."""
    return serving
