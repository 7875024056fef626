"""Security on the real stack: no pickle, confined outputs, input limits, Redis auth and TLS.

Also that the producer takes only ``s3://`` inputs: it never fetches a URL or reads a local file
as an image.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from kombu.exceptions import OperationalError
from PIL import Image

from infra.celery_app import BLUR_TASK, create_app
from infra.errors import InvalidJob
from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import ImageState, StatusStore
from infra.storage import S3Storage
from producer.client import Client
from producer.local.stack import LocalStack, free_port

pytestmark = pytest.mark.integration

BUCKET = "security"
PARAMS = BlurParams(strength=20, model="u2netp")
PASSWORD = "correct-horse-battery-staple"


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def wait_for_line(path: Path, text: str, timeout: float = 60.0) -> str:
    """The first line of a log that contains text, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if text in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no line with {text!r} in {path}")


class CreatesAFile:
    """Unpickling this creates its path: proof that someone executed a pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    settings = stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    return Client(settings, storage=storage)


def test_a_pickled_message_is_refused_and_never_executed(
    stack: LocalStack, client: Client, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    pids = {name: stack.processes[name].pid for name in ("worker1", "worker2")}
    with client.app.connection_for_write() as connection:
        # The producer side may speak pickle if it likes: the workers must not listen.
        client.app.send_task(
            BLUR_TASK,
            args=[CreatesAFile(marker)],
            queue="interactive",
            serializer="pickle",
            connection=connection,
        )
    assert stack.log_dir is not None
    logs = [stack.log_dir / f"{name}.log" for name in pids]
    deadline = time.monotonic() + 60
    while not any("application/x-python-serialize" in log.read_text() for log in logs):
        assert time.monotonic() < deadline, "no worker logged the refusal"
        time.sleep(0.2)
    refusal = next(
        line
        for log in logs
        for line in log.read_text().splitlines()
        if "application/x-python-serialize" in line
    )
    assert "Refusing to deserialize untrusted content" in refusal
    assert not marker.exists()
    assert client.status_store.redis.llen("interactive") == 0  # refused, not left to loop
    assert {name: stack.processes[name].pid for name in pids} == pids
    assert all(stack.processes[name].poll() is None for name in pids)
    replies = client.app.control.ping(timeout=2.0) or []
    assert {node.split("@")[0] for reply in replies for node in reply} >= set(pids)


def test_outputs_stay_inside_the_batch_prefix_whatever_the_key(client: Client) -> None:
    photo = png(np.full((48, 64, 3), 90, np.uint8))
    keys = [
        "../../escape.jpg",
        "/absolute/etc/passwd.png",
        "a/./b/../../../../root.png",
        "ünï/çødé/../../写真.png",
        "..",
        "...png",
        "x//y/.//z.png",
    ]
    for key in keys:
        client.storage.put(BUCKET, key, photo, content_type="image/png")
    before = set(client.storage.list(BUCKET, ""))
    batch = client.submit(
        uris=[f"s3://{BUCKET}/{key}" for key in keys],
        output=f"s3://{BUCKET}/out/confined/",
        params=PARAMS,
    )
    status = client.wait(batch, timeout=120)
    assert status.done == len(keys), [i.error for i in client.images(batch, ImageState.FAILED)]
    written = set(client.storage.list(BUCKET, "")) - before
    assert len(written) == len(keys)
    assert all(key.startswith("out/confined/") for key in written), written
    assert all(".." not in key.split("/") and "//" not in key for key in written), written


def test_the_local_stacks_redis_wants_its_random_password(stack: LocalStack) -> None:
    """As any local user would try it: a raw socket, then redis-py, with no or a wrong password."""
    with socket.create_connection(("127.0.0.1", stack.redis_port), timeout=5) as raw:
        raw.sendall(b"PING\r\nAUTH default not-the-password\r\nKEYS *\r\n")
        time.sleep(0.5)
        answers = raw.recv(4096).decode().splitlines()
    assert answers[0].startswith("-NOAUTH") and answers[1].startswith("-WRONGPASS"), answers
    assert answers[2].startswith("-NOAUTH"), answers
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=stack.redis_port).ping()
    assert len(stack.redis_password) >= 24 and stack.redis_password in stack.redis_url
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    cmdline = Path(f"/proc/{stack.processes['redis'].pid}/cmdline").read_bytes()
    assert stack.redis_password.encode() not in cmdline  # ps shows argv to every local user


@pytest.fixture(scope="module")
def locked_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack whose Redis wants a password, with small input limits for its one worker."""
    log_dir = tmp_path_factory.mktemp("locked")
    with LocalStack(workers=0, flower=False, redis_password=PASSWORD, log_dir=log_dir) as stack:
        limits = {"BLURQ_MAX_INPUT_BYTES": "40000", "BLURQ_MAX_INPUT_PIXELS": "20000"}
        stack.start_worker("worker1", limits)
        stack.wait_for_workers(1, timeout=180)
        yield stack


def test_redis_password_and_input_limits_end_to_end(locked_stack: LocalStack) -> None:
    assert locked_stack.redis_url.startswith(f"redis://:{PASSWORD}@")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=locked_stack.redis_port).ping()
    settings = locked_stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    rng = np.random.default_rng(6)
    inputs = {
        "small.png": png(np.full((100, 100, 3), 120, np.uint8)),  # 10,000 px, ~0.3 kB
        "wide.png": png(np.full((150, 150, 3), 120, np.uint8)),  # 22,500 px, ~0.3 kB
        "noisy.png": png(rng.integers(0, 256, (130, 130, 3), dtype=np.uint8)),  # ~50 kB
    }
    for key, data in inputs.items():
        storage.put(BUCKET, key, data, content_type="image/png")
    client = Client(settings, storage=storage)
    batch = client.submit(
        uris=[f"s3://{BUCKET}/{key}" for key in inputs], output=f"s3://{BUCKET}/out/", params=PARAMS
    )
    client.wait(batch, timeout=120)
    images = {image.input.rsplit("/", 1)[1]: image for image in client.images(batch)}
    assert images["small.png"].state is ImageState.DONE
    assert "22,500 pixels, over the limit of 20,000 pixels" in images["wide.png"].error
    assert f"is {len(inputs['noisy.png'])} bytes, limit 40000" in images["noisy.png"].error


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server speaking only TLS with a fresh self-signed certificate; its rediss URL."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    request = "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    request += " -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        ["openssl", *request.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            *(str(shutil.which("redis-server")), "--port", "0", "--tls-port", str(port)),
            *("--bind", "127.0.0.1", "--save", "", "--tls-auth-clients", "no"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(cert), "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.skipif(
    subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).returncode
    != 0
    or shutil.which("openssl") is None,
    reason="needs redis-server and openssl",
)
def test_rediss_urls_work_for_status_and_broker(tls_redis: str) -> None:
    settings = Settings(redis_url=tls_redis)
    store = StatusStore.from_url(settings.redis_url, ttl=600, max_deliveries=3)
    assert store.create_batch("tls", [("000000", "s3://b/k.jpg")], {})
    assert store.batch("tls") is not None
    app = create_app(settings)
    task_id = str(uuid.uuid4())
    with app.connection_for_write() as connection:
        app.send_task(BLUR_TASK, args=[{}], queue="bulk", task_id=task_id, connection=connection)
    assert task_id in str(store.redis.lrange("bulk", 0, -1))
    # Without the CA the server's certificate is not trusted: TLS is really checked.
    untrusted = tls_redis.split("&ssl_ca_certs=")[0]
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(untrusted).ping()
    bare = tls_redis.split("?")[0]  # kombu alone would not verify at all with this one
    for url in (untrusted, bare):
        broker = create_app(Settings(redis_url=url)).connection_for_write()
        with pytest.raises(OperationalError, match="certificate verify failed"), broker:
            broker.ensure_connection(max_retries=1)


@pytest.mark.parametrize(
    "inputs",
    [
        {"uris": ["http://example.invalid/photo.jpg"]},
        {"uris": ["https://example.invalid/photo.jpg"]},
        {"uris": ["file:///etc/passwd"]},
        {"uris": ["/etc/passwd"]},
        {"uris": ["s3://"]},
        {"prefix": "http://example.invalid/photos/"},
        {"manifest": "MANIFEST"},
    ],
    ids=["http", "https", "file", "path", "no-bucket", "http-prefix", "manifest-with-url"],
)
def test_the_producer_accepts_only_s3_inputs(
    inputs: dict[str, object], tmp_path: Path, settings: Settings
) -> None:
    # Refused before any network I/O: no Redis, no S3. A manifest's lines are known only once it
    # is read, after the submit was counted against the tenant's rate: that case gets a Redis.
    client = Client(Settings(redis_url="redis://127.0.0.1:1/0"))
    if inputs.get("manifest"):
        manifest = tmp_path / "list.txt"
        manifest.write_text("s3://bkt/fine.jpg\nhttp://example.invalid/photo.jpg\n")
        inputs = {"manifest": str(manifest)}
        client = Client(settings)
    with pytest.raises(InvalidJob, match="s3://"):
        client.submit(output="s3://bkt/out/", **inputs)  # type: ignore[arg-type]
    with pytest.raises(InvalidJob, match="s3://"):
        client.submit(output="http://example.invalid/out/", uris=["s3://bkt/a.jpg"])
