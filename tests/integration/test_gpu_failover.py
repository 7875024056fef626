"""A GPU failure in a real worker: the image goes back to the queue, the process ends, Celery
replaces it, and a later delivery finishes the image; one that fails every time ends as poison.

The failure is injected by ``gpu_fault/sitecustomize.py`` (on the workers' ``PYTHONPATH``): the
matting network raises what onnxruntime raises when its CUDA device fails. One worker with one
pool process, so that the replacement is the pool's own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_faults import finished, pool_children, records, small_photos

from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import EVENTS_KEY
from infra.storage import S3Storage
from producer.client import Client
from producer.local.stack import LocalStack
from workers.gpu.failures import GPU_FAILURE_EXIT

pytestmark = pytest.mark.integration

BUCKET = "gpu-failover"
FAULT_DIR = Path(__file__).resolve().parent / "gpu_fault"
MAX_DELIVERIES = 3
PARAMS = BlurParams(strength=40, model="u2netp")  # the fastest model: the failover is tested


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = tmp_path_factory.mktemp("gpu-failover")
    with LocalStack(workers=0, flower=False, expander=False, api=False, log_dir=log_dir) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    settings = stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    for n, photo in enumerate(small_photos(3)):
        storage.put(BUCKET, f"in/{n}.jpg", photo, content_type="image/jpeg")
    return Client(settings, storage=storage)


def faulty_worker(stack: LocalStack, name: str, marker: Path, *, always: bool) -> int:
    """Start a one-process worker whose matting fails as a GPU does; the worker's pid."""
    path = os.pathsep.join(filter(None, [str(FAULT_DIR), os.environ.get("PYTHONPATH")]))
    env = {
        "PYTHONPATH": path,
        "TEST_GPU_FAULT": str(marker),
        "TEST_GPU_FAULT_ALWAYS": "1" if always else "0",
        "BLURQ_MAX_DELIVERIES": str(MAX_DELIVERIES),
    }
    process = stack.start_worker(name, env)
    stack.wait_for_workers(1, timeout=180)
    return process.pid


def stop(stack: LocalStack, name: str) -> str:
    """Stop a worker; its log."""
    process = stack.processes.pop(name)
    process.terminate()
    process.wait(timeout=60)
    assert stack.log_dir is not None
    return (stack.log_dir / f"{name}.log").read_text()


def states(client: Client, batch_id: str, image_id: str) -> list[str]:
    """The image's states in the events stream, in order."""
    events = client.status_store.redis.xrange(EVENTS_KEY)
    return [f["state"] for _, f in events if (f["batch"], f["image"]) == (batch_id, image_id)]


def test_gpu_failure_requeues_the_image_and_replaces_the_process(
    client: Client, stack: LocalStack, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    worker = faulty_worker(stack, "gpu-once", marker, always=False)
    first_child = pool_children(worker)
    try:
        uris = [f"s3://{BUCKET}/in/{n}.jpg" for n in range(3)]
        batch = client.submit(uris=uris, output=f"s3://{BUCKET}/once/", params=PARAMS)
        status = finished(client, batch, timeout=240)
        found = records(client, batch)
        replaced = pool_children(worker)
    finally:
        log = stop(stack, "gpu-once")
    assert marker.exists()  # the fault was injected
    assert (status.done, status.failed) == (3, 0)
    (hit,) = [image for image, record in found.items() if record["deliveries"] == "2"]
    assert {record["deliveries"] for image, record in found.items() if image != hit} == {"1"}
    # Back to queued by the failing process, then run to the end by its replacement.
    assert states(client, batch, hit)[-4:] == ["running", "queued", "running", "done"]
    assert replaced and not set(first_child) & set(replaced)
    assert "GPU failure: RuntimeException" in log
    assert f"exitcode {GPU_FAILURE_EXIT}" in log  # Celery saw the process end, not a crash


def test_gpu_failure_every_time_ends_as_poison(
    client: Client, stack: LocalStack, tmp_path: Path
) -> None:
    worker = faulty_worker(stack, "gpu-always", tmp_path / "failing", always=True)
    try:
        uri = f"s3://{BUCKET}/in/0.jpg"
        batch = client.submit(uris=[uri], output=f"s3://{BUCKET}/always/", params=PARAMS)
        status = finished(client, batch, timeout=240)
        (record,) = records(client, batch).values()
        time.sleep(1)  # the pool replaces its last process after the poison ends the task
        alive = pool_children(worker)
    finally:
        log = stop(stack, "gpu-always")
    assert (status.done, status.failed) == (0, 1)
    assert record["error"] == f"poison: delivered {MAX_DELIVERIES + 1} times without finishing"
    assert log.count("GPU failure: RuntimeException") == MAX_DELIVERIES
    assert alive  # the worker lives on, with a pool process
