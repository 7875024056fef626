"""Faults on the real stack: killed workers, a Redis restart, a hostile S3 network, SIGTERM,
a failing GPU.

One stack for the module: redis-server with its append-only file on, the local S3 server and two
Celery workers whose broker visibility timeout is short (20 s), so that the message of a worker
killed outright comes back within the test. After each fault the image records, the events
stream and the bucket prove that every image ended done exactly once with its output in S3.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image
from s3_faults import S3FaultProxy

from infra.celery_app import create_app
from infra.errors import StatusUnavailable
from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import EVENTS_KEY, BatchStatus, batch_key, image_key
from infra.storage import S3Storage, S3Uri
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack, free_port
from workers.gpu.failures import GPU_FAILURE_EXIT

pytestmark = pytest.mark.integration

BUCKET = "faults"
PHOTOS = 40
WORKERS = ("worker1", "worker2")
SHORT = {
    "BLURQ_VISIBILITY_TIMEOUT": "20",
    "BLURQ_TASK_TIME_LIMIT": "15",
    "BLURQ_TASK_SOFT_TIME_LIMIT": "12",
}
"""Worker settings that bring a dead worker's message back within 20 s."""
PARAMS = BlurParams(strength=40, model="u2netp")  # the fastest model: faults are tested, not pixels
MID_IMAGE = ("matting", "foreground", "bokeh")
GPU_FAULT = Path(__file__).resolve().parent / "gpu_fault"
"""A sitecustomize that makes the matting network fail as a CUDA device does (on PYTHONPATH)."""


def small_photos(count: int, size: tuple[int, int] = (240, 180)) -> list[bytes]:
    """count JPEGs of the given size, cropped from the sample photos at seeded places."""
    rng = np.random.default_rng(6)
    sources = [Image.fromarray(sample.load()).convert("RGB") for sample in SAMPLES]
    photos = []
    for n in range(count):
        source = sources[n % len(sources)]
        width = int(source.width * rng.uniform(0.5, 1.0))
        height = int(source.height * rng.uniform(0.5, 1.0))
        left = int(rng.integers(0, source.width - width + 1))
        top = int(rng.integers(0, source.height - height + 1))
        crop = source.crop((left, top, left + width, top + height)).resize(size)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = tmp_path_factory.mktemp("faults")
    with LocalStack(workers=0, flower=False, redis_appendonly=True, log_dir=log_dir) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(fault_stack: LocalStack) -> Client:
    settings = fault_stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    for n, photo in enumerate(small_photos(PHOTOS)):
        storage.put(BUCKET, f"in/{n:03d}.jpg", photo, content_type="image/jpeg")
    return Client(settings, storage=storage)


@pytest.fixture
def workers(fault_stack: LocalStack) -> LocalStack:
    """The stack with worker1 and worker2 running and answering (restarted if a test ended one)."""
    for name in WORKERS:
        process = fault_stack.processes.get(name)
        if process is None or process.poll() is not None:
            fault_stack.start_worker(name, SHORT)
    fault_stack.wait_for_workers(len(WORKERS), timeout=180)
    return fault_stack


def submit(client: Client, batch_id: str, count: int) -> str:
    uris = [f"s3://{BUCKET}/in/{n:03d}.jpg" for n in range(count)]
    return client.submit(
        uris=uris, output=f"s3://{BUCKET}/{batch_id}/", params=PARAMS, batch_id=batch_id
    )


def records(client: Client, batch_id: str) -> dict[str, dict[str, str]]:
    """Every image record of the batch as stored (including the worker that last ran it)."""
    redis = client.status_store.redis
    ids = redis.lrange(f"{batch_key(batch_id)}:images", 0, -1)
    pipe = redis.pipeline()
    for image_id in ids:
        pipe.hgetall(image_key(batch_id, image_id))
    return dict(zip(ids, pipe.execute(), strict=True))


def signal_mid_image(
    client: Client, batch_id: str, worker: str, pids: list[int], sig: signal.Signals
) -> str:
    """Wait until worker is inside an image's heavy stages, signal pids; returns the image id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            found = records(client, batch_id)
        except redis.RedisError:  # a reply slowed past the client's timeout on a busy machine
            continue
        for image_id, record in found.items():
            busy = record.get("state") == "running" and record.get("stage") in MID_IMAGE
            if busy and record.get("worker", "").startswith(f"{worker}@"):
                for pid in pids:
                    os.kill(pid, sig)
                return image_id
        time.sleep(0.02)
    raise AssertionError(f"{worker} never got to the middle of an image of {batch_id}")


def pool_children(pid: int) -> list[int]:
    """The prefork pool's processes of a worker (Linux /proc)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def finished(client: Client, batch_id: str, timeout: float = 300.0) -> BatchStatus:
    """The batch once every image is final; a Redis reply slowed by a busy machine is waited out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.wait(batch_id, timeout=max(0.0, deadline - time.monotonic()))
        except StatusUnavailable:
            assert time.monotonic() < deadline, f"{batch_id}: Redis unavailable"
            time.sleep(1)


def done_exactly_once(client: Client, batch_id: str, count: int) -> dict[str, dict[str, str]]:
    """Wait for the batch; assert every image is done once with its output; return the records."""
    status = finished(client, batch_id)
    assert (status.total, status.done, status.failed) == (count, count, 0)
    assert status.queued == status.running == 0
    found = records(client, batch_id)
    assert {record["state"] for record in found.values()} == {"done"}
    done_events = Counter(
        fields["image"]
        for _, fields in client.status_store.redis.xrange(EVENTS_KEY)
        if fields["batch"] == batch_id and fields["state"] == "done"
    )
    assert done_events == Counter(dict.fromkeys(found, 1))
    keys = sorted(S3Uri.parse(record["output"]).key for record in found.values())
    assert len(set(keys)) == count
    assert sorted(client.storage.list(BUCKET, f"{batch_id}/")) == keys
    return found


def deliveries(found: dict[str, dict[str, str]]) -> dict[str, int]:
    return {image_id: int(record["deliveries"]) for image_id, record in found.items()}


def test_sigkill_of_the_pool_child_mid_image_loses_nothing(
    client: Client, workers: LocalStack
) -> None:
    batch = submit(client, "child-kill", PHOTOS)
    worker = workers.processes["worker1"]
    children = pool_children(worker.pid)
    killed = signal_mid_image(client, batch, "worker1", children, signal.SIGKILL)
    found = done_exactly_once(client, batch, PHOTOS)
    # reject_on_worker_lost put the message straight back: one more delivery, nothing else.
    counts = deliveries(found)
    assert counts.pop(killed) == 2
    assert set(counts.values()) == {1}
    assert worker.poll() is None  # the worker lives on with a fresh pool process
    assert pool_children(worker.pid) and not set(children) & set(pool_children(worker.pid))


def test_sigterm_mid_image_finishes_the_image_and_loses_nothing(
    client: Client, workers: LocalStack
) -> None:
    batch = submit(client, "sigterm", 20)
    worker = workers.processes["worker1"]
    finishing = signal_mid_image(client, batch, "worker1", [worker.pid], signal.SIGTERM)
    assert worker.wait(timeout=60) == 0  # warm shutdown: the running image first, then exit
    found = done_exactly_once(client, batch, 20)
    assert found[finishing]["worker"].startswith("worker1@")
    assert set(deliveries(found).values()) == {1}


def test_sigkill_of_the_whole_worker_mid_image_loses_nothing(
    client: Client, workers: LocalStack
) -> None:
    batch = submit(client, "worker-kill", PHOTOS)
    worker = workers.processes["worker1"]
    pids = [worker.pid, *pool_children(worker.pid)]
    killed = signal_mid_image(client, batch, "worker1", pids, signal.SIGKILL)
    first_start = float(records(client, batch)[killed]["started_at"])
    worker.wait(timeout=10)
    found = done_exactly_once(client, batch, PHOTOS)
    # Its message stayed unacknowledged until the visibility timeout sent it to worker2. The
    # timeout runs from when worker1 took the message, just before its first start (not from the
    # kill, which came later, mid-image); a second of slack covers take-to-start.
    counts = deliveries(found)
    assert counts.pop(killed) == 2
    assert set(counts.values()) == {1}
    assert found[killed]["worker"].startswith("worker2@")
    visibility = int(SHORT["BLURQ_VISIBILITY_TIMEOUT"])
    assert float(found[killed]["started_at"]) - first_start >= visibility - 1


def test_redis_restart_mid_batch_loses_nothing(client: Client, workers: LocalStack) -> None:
    batch = submit(client, "redis-restart", 20)
    deadline = time.monotonic() + 120
    while (done_before := client.status(batch).done) < 5:
        assert time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.1)
    workers.restart_redis()
    # The append-only file brought the records back: nothing counted before is forgotten.
    assert client.status(batch).done >= done_before
    assert workers.log_dir is not None and (workers.log_dir / "appendonlydir").is_dir()
    done_exactly_once(client, batch, 20)


@contextmanager
def other_workers(
    stack: LocalStack, env: dict[str, str], broker: Settings, count: int = len(WORKERS)
) -> Iterator[None]:
    """worker1 and worker2 stopped, count workers (other-worker1, ...) with env in their place
    until the block ends."""
    for name in WORKERS:
        stack.processes[name].send_signal(signal.SIGTERM)
    for name in WORKERS:
        stack.processes.pop(name).wait(timeout=60)
    names = [f"other-{name}" for name in WORKERS[:count]]
    app = create_app(broker)
    try:
        for name in names:
            stack.start_worker(name, env)
        deadline = time.monotonic() + 180
        while len(app.control.ping(timeout=1.0) or []) < len(names):
            assert time.monotonic() < deadline, "the workers did not answer"
        yield
    finally:
        app.close()
        for name in names:
            stack.processes[name].terminate()
        for name in names:
            stack.processes.pop(name).wait(timeout=60)


def test_status_redis_outage_with_its_own_broker_loses_nothing(
    client: Client, workers: LocalStack, tmp_path: Path
) -> None:
    port = free_port()
    broker = subprocess.Popen(
        [
            *(str(shutil.which("redis-server")), "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    settings = client.settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0"})
    split = Client(settings, storage=client.storage)
    try:
        with other_workers(workers, {"BLURQ_BROKER_URL": settings.broker_url}, settings):
            batch = submit(split, "status-outage", 20)
            deadline = time.monotonic() + 120
            while split.status(batch).done < 3:
                assert time.monotonic() < deadline, "the batch did not start"
                time.sleep(0.1)
            # Status writes fail at once while Redis is away; the broker stays up, so a task
            # that gave up on its status would be acknowledged and its image lost.
            workers.restart_redis(down_for=5)
            found = done_exactly_once(split, batch, 20)
    finally:
        split.app.close()
        broker.terminate()
        broker.wait(timeout=20)
    assert max(deliveries(found).values()) <= 2


def test_s3_faults_are_retried_boundedly_and_visibly(client: Client, workers: LocalStack) -> None:
    max_retries = 6
    with S3FaultProxy(workers.s3_endpoint, fault_rate=0.35, seed=6) as proxy:
        env = {  # these workers reach S3 only through the proxy
            "BLURQ_S3_ENDPOINT_URL": proxy.url,
            "BLURQ_S3_MAX_ATTEMPTS": "2",  # few, so that some calls still fail after them
            "BLURQ_MAX_RETRIES": str(max_retries),
            "BLURQ_MAX_DELIVERIES": str(max_retries + 2),
        }
        with other_workers(workers, env, client.settings):
            found = done_exactly_once(client, submit(client, "s3-faults", 20), 20)
    assert proxy.faults >= 0.2 * proxy.requests
    assert proxy.counts["slowdown"] > 0 and proxy.counts["drop"] > 0
    retries = {image_id: int(record.get("retries", 0)) for image_id, record in found.items()}
    assert sum(retries.values()) > 0  # some calls failed even after boto3's own retry
    assert max(retries.values()) <= max_retries
    assert deliveries(found) == {image_id: n + 1 for image_id, n in retries.items()}


def gpu_fault(marker: Path, *, always: bool) -> dict[str, str]:
    """Worker settings under which the matting network raises onnxruntime's CUDA error: once on
    the machine (the first run to create marker), or in every run."""
    path = os.pathsep.join(filter(None, [str(GPU_FAULT), os.environ.get("PYTHONPATH")]))
    switches = {"TEST_GPU_FAULT": str(marker), "TEST_GPU_FAULT_ALWAYS": "1" if always else "0"}
    return {"PYTHONPATH": path, **switches, "BLURQ_MAX_DELIVERIES": "3"}


def log_from(stack: LocalStack, name: str) -> Callable[[], str]:
    """What a process writes to its log from now on (other tests' workers share the names)."""
    assert stack.log_dir is not None
    log = stack.log_dir / f"{name}.log"
    start = log.stat().st_size if log.exists() else 0
    return lambda: log.read_bytes()[start:].decode(errors="replace")


def states(client: Client, batch_id: str, image_id: str) -> list[str]:
    """An image's states in the events stream, in order."""
    events = client.status_store.redis.xrange(EVENTS_KEY)
    return [f["state"] for _, f in events if (f["batch"], f["image"]) == (batch_id, image_id)]


def test_gpu_failure_requeues_the_image_and_replaces_the_process(
    client: Client, workers: LocalStack, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    written = log_from(workers, "other-worker1")
    with other_workers(workers, gpu_fault(marker, always=False), client.settings, count=1):
        worker = workers.processes["other-worker1"]
        first = pool_children(worker.pid)
        batch = submit(client, "gpu-failure", 3)
        found = done_exactly_once(client, batch, 3)
        replaced = pool_children(worker.pid)
    assert marker.exists()  # the fault was injected
    counts = deliveries(found)
    (hit,) = [image_id for image_id, n in counts.items() if n == 2]
    assert set(counts.values()) == {1, 2}
    # Back to queued by the failing process, then run to the end by its replacement.
    assert states(client, batch, hit)[-4:] == ["running", "queued", "running", "done"]
    assert replaced and not set(first) & set(replaced)
    log = written()
    assert "GPU failure: RuntimeException" in log
    assert f"exitcode {GPU_FAILURE_EXIT}" in log  # the pool saw its process end on purpose


def test_gpu_failure_every_time_ends_as_poison(
    client: Client, workers: LocalStack, tmp_path: Path
) -> None:
    written = log_from(workers, "other-worker1")
    with other_workers(workers, gpu_fault(tmp_path / "m", always=True), client.settings, count=1):
        worker = workers.processes["other-worker1"]
        batch = submit(client, "gpu-poison", 1)
        status = finished(client, batch)
        (record,) = records(client, batch).values()
        time.sleep(1)  # the pool replaces its last process after the poison ends the task
        alive = pool_children(worker.pid)
    assert (status.done, status.failed) == (0, 1)
    assert record["error"] == "poison: delivered 4 times without finishing"  # max_deliveries 3
    assert written().count("GPU failure: RuntimeException") == 3
    assert alive  # the worker lives on, with a pool process
