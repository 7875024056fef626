"""The hostile tenant: tenant B's keys against tenant A's buckets and batches, on the real stack.

A stack of its own runs ``blurq api`` with a tenants file (no ``BLURQ_API_KEYS``): shop-a,
shop-b (the attacker), and small-quota tenants. Everything goes over HTTP, as an attacker would;
one test publishes jobs straight to the broker and watches a real worker refuse them. No worker
runs before that test, so batches stay queued and quotas are exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from infra.celery_app import BLUR_TASK, create_app
from infra.jobs import JobMessage
from infra.settings import Settings
from infra.status import ImageState, ImageStatus, StatusStore
from infra.storage import S3Storage
from infra.tenants import FORBIDDEN, key_hash, new_key
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

KEYS = {name: new_key() for name in ("a", "a-view", "b", "c", "d", "e")}
LIMITS = {"images_per_batch": 100, "outstanding_images": 1000, "submits_per_minute": 1000}


def tenant(name: str, keys: dict[str, str], **limits: int) -> dict[str, Any]:
    return {
        "name": name,
        "keys": [{"sha256": key_hash(KEYS[key]), "role": role} for key, role in keys.items()],
        "inputs": [f"s3://{name}-photos/"],
        "outputs": [f"s3://{name}-results/"],
        "limits": {**LIMITS, **limits},
    }


TENANTS = {
    "tenants": [
        tenant("shop-a", {"a": "submit", "a-view": "view"}),
        tenant("shop-b", {"b": "submit"}),
        tenant("shop-c", {"c": "submit"}, submits_per_minute=2),
        tenant("shop-d", {"d": "submit"}, images_per_batch=3, outstanding_images=4),
        {**tenant("shop-e", {"e": "submit"}), "inputs": ["s3://shop-e/"]}
        | {"outputs": ["s3://shop-e/out/"]},
    ]
}


EVIL = b"s3://shop-b-photos/mine.jpg\ns3://shop-a-photos/config/%s.env\n"
OBJECTS = {
    "shop-a-photos/photos/x.jpg": b"\xff\xd8 a's photo",
    "shop-a-photos/config/prod.env": b"SECRET=1\n",
    "shop-a-photos/list.txt": b"photos/x.jpg\n",
    "shop-b-photos/mine.jpg": b"\xff\xd8 b's photo",
    "shop-b-photos/evil.txt": EVIL % b"prod",  # a line into A, at an object that exists
    "shop-b-photos/missing.txt": EVIL % b"none",  # ... and at one that does not
    **{f"shop-d-photos/p/{n}.jpg": b"\xff\xd8" for n in range(5)},
    "shop-d-photos/four.txt": b"".join(b"p/%d.jpg\n" % n for n in range(4)),
    "shop-d-photos/large.txt": b"# padding\n" * 40,  # 400 bytes: over 100 a line of the cap (3)
    "shop-d-photos/binary.txt": bytes(range(256)),
}


@dataclass
class TenantStack(LocalStack):
    """The local stack with a tenants file instead of BLURQ_API_KEYS."""

    tenants_file: str = ""

    def _overrides(self) -> dict[str, str]:
        return {**super()._overrides(), "api_keys": "", "tenants_file": self.tenants_file}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    directory = tmp_path_factory.mktemp("tenants")
    path = directory / "tenants.json"
    path.write_text(json.dumps(TENANTS))
    with TenantStack(workers=0, flower=False, log_dir=directory, tenants_file=str(path)) as up:
        storage = S3Storage(up.settings(Settings()))
        for name in ("shop-a", "shop-b", "shop-c", "shop-d"):
            for bucket in (f"{name}-photos", f"{name}-results"):
                storage.ensure_bucket(bucket)
        storage.ensure_bucket("shop-e")
        for where, data in OBJECTS.items():
            bucket, _, key = where.partition("/")
            storage.put(bucket, key, data, content_type="application/octet-stream")
        yield up


def client(stack: LocalStack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"X-API-Key": KEYS[key]}, timeout=30)


@pytest.fixture(scope="module")
def a(stack: LocalStack) -> Iterator[httpx.Client]:
    with client(stack, "a") as found:
        yield found


@pytest.fixture(scope="module")
def b(stack: LocalStack) -> Iterator[httpx.Client]:
    with client(stack, "b") as found:
        yield found


def submit(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/v1/batches", json=body)


B_OUT, A_IN, B_IN = "s3://shop-b-results/", "s3://shop-a-photos/", "s3://shop-b-photos/"


@pytest.fixture(scope="module")
def a_batch(a: httpx.Client) -> dict[str, Any]:
    reply = submit(a, uris=[f"{A_IN}photos/x.jpg"], output="s3://shop-a-results/", batch_id="s-01")
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


# Each attack at an object that exists and at one that does not (or a bucket that does not).
ATTACKS: dict[str, list[dict[str, Any]]] = {
    "uris": [
        {"uris": [uri]}
        for uri in (f"{A_IN}config/prod.env", f"{A_IN}config/no.env", "s3://no-such-bucket/x.env")
    ],
    "prefix": [{"prefix": f"{A_IN}config/"}, {"prefix": f"{A_IN}nothing/"}],
    "manifest": [{"manifest": f"{A_IN}list.txt"}, {"manifest": f"{A_IN}none.txt"}],
    "manifest line": [{"manifest": f"{B_IN}evil.txt"}, {"manifest": f"{B_IN}missing.txt"}],
    "output": [
        {"uris": [f"{B_IN}mine.jpg"], "output": output}
        for output in ("s3://shop-a-results/", "s3://shop-a-results/new/", "s3://no-such-bucket/")
    ],
    "depth map": [{"uris": [f"{A_IN}photos/x.jpg"], "params": {"depth_suffix": ".depth.png"}}],
}


def refusal(api: httpx.Client, reply: httpx.Response) -> tuple[int | str, str]:
    """How a request was refused and why: at once (the HTTP status and the error's message), or
    while its prefix or manifest was listed in the background (202, then the batch ``failed``
    with its error)."""
    if reply.status_code != 202:
        return reply.status_code, str(reply.json()["error"]["message"])
    path, deadline = f"/v1/batches/{reply.json()['batch_id']}", time.monotonic() + 60
    while (found := api.get(path).json())["state"] == "expanding":
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    return found["state"], found["error"]


def redacted(text: str, body: dict[str, Any]) -> str:
    """The error message with the URI the caller gave taken out."""
    for uri in [*body.get("uris", []), body.get("prefix"), body.get("manifest"), body["output"]]:
        text = text.replace(str(uri).rstrip("/"), "<uri>")
    return text.replace("config/prod.env", "<line>").replace("config/none.env", "<line>")


@pytest.mark.parametrize("kind", list(ATTACKS))
def test_b_cannot_reach_into_a_and_learns_nothing(b: httpx.Client, kind: str) -> None:
    messages = set()
    for attack in ATTACKS[kind]:
        body = {"output": B_OUT, **attack}
        how, message = refusal(b, submit(b, **body))
        # A manifest's lines are read by the expander: the batch fails whole, nothing is sent.
        assert how == ("failed" if kind == "manifest line" else 403), (how, message)
        assert FORBIDDEN in message
        messages.add(redacted(message, body))
    assert len(messages) == 1, messages  # one text whether the object or bucket exists or not


def test_a_batch_of_a_is_a_404_to_b_like_any_unknown_batch(
    a: httpx.Client, b: httpx.Client, a_batch: dict[str, Any]
) -> None:
    assert a.get("/v1/batches/s-01").status_code == 200
    for path in ("/v1/batches/{}", "/v1/batches/{}/images"):
        theirs, unknown = b.get(path.format("s-01")), b.get(path.format("s-99"))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.text.replace("s-01", "?") == unknown.text.replace("s-99", "?")
    cancel = b.post("/v1/batches/s-01/cancel")
    assert cancel.status_code == 404 and cancel.json()["error"]["code"] == "batch_not_found"
    assert a.get("/v1/batches/s-01").json()["cancelled"] is False
    assert "s-01" not in {batch["batch_id"] for batch in b.get("/v1/batches").json()["batches"]}
    assert "s-01" in {batch["batch_id"] for batch in a.get("/v1/batches").json()["batches"]}


def test_two_tenants_may_use_the_same_batch_id(
    a: httpx.Client, b: httpx.Client, a_batch: dict[str, Any]
) -> None:
    reply = submit(b, uris=["s3://shop-b-photos/mine.jpg"], output=B_OUT, batch_id="s-01")
    assert reply.status_code == 201, reply.text  # created: not A's batch answered back
    assert reply.json()["batch_id"] == "s-01" and reply.json()["output"] == B_OUT
    assert a.get("/v1/batches/s-01").json()["output"] == "s3://shop-a-results/"
    images = b.get("/v1/batches/s-01/images").json()["images"]
    assert [image["input"] for image in images] == ["s3://shop-b-photos/mine.jpg"]


def test_a_view_key_reads_and_never_changes(stack: LocalStack, a_batch: dict[str, Any]) -> None:
    with client(stack, "a-view") as view:
        for path in ("/v1/batches", "/v1/batches/s-01", "/v1/batches/s-01/images"):
            assert view.get(path).status_code == 200, path
        body = {"uris": ["s3://shop-a-photos/photos/x.jpg"], "output": "s3://shop-a-results/"}
        for reply in (view.post("/v1/batches", json=body), view.post("/v1/batches/s-01/cancel")):
            assert reply.status_code == 403 and reply.json()["error"]["code"] == "forbidden"
    with client(stack, "a") as a:
        assert a.get("/v1/batches/s-01").json()["cancelled"] is False


def test_unknown_keys_and_odd_path_ids(stack: LocalStack, a: httpx.Client) -> None:
    with httpx.Client(base_url=stack.api_url, headers={"X-API-Key": new_key()}) as nobody:
        assert nobody.get("/v1/batches").status_code == 401
    for odd in ("x:images", "-x", "a" * 65):
        assert a.get(f"/v1/batches/{odd}").status_code == 422, odd
        assert a.get(f"/v1/batches/{odd}/images").status_code == 422, odd


def test_overlaps_and_large_interactive_batches_are_refused(stack: LocalStack) -> None:
    many = [f"s3://shop-e/in/{n}.jpg" for n in range(9)]  # the interactive lane takes 8
    with client(stack, "e") as e:
        for body, says in (
            ({"prefix": "s3://shop-e/"}, "overlap"),
            ({"uris": ["s3://shop-e/out/x.jpg"]}, "inside the output"),
            ({"uris": many, "queue": "interactive"}, "interactive"),
        ):
            reply = submit(e, **body, output="s3://shop-e/out/")
            assert reply.status_code == 422 and says in reply.json()["error"]["message"]


def test_submits_per_minute_answer_429_with_retry_after(stack: LocalStack) -> None:
    body = {"uris": ["s3://shop-c-photos/x.jpg"], "output": "s3://shop-c-results/"}
    with client(stack, "c") as c:
        replies = [submit(c, **body, batch_id=f"m-{n}") for n in range(5)]
    # The limit is 2 a minute: of 5 in a row at least one is refused, even across a minute's end.
    assert [reply.status_code for reply in replies].count(429) >= 1
    refused = next(reply for reply in replies if reply.status_code == 429)
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_images_per_batch_and_outstanding_images(stack: LocalStack) -> None:
    out = "s3://shop-d-results/"
    four = [f"s3://shop-d-photos/p/{n}.jpg" for n in range(4)]
    with client(stack, "d") as d:
        assert refusal(d, submit(d, uris=four, output=out))[0] == 422  # the request holds 4
        listed = ({"prefix": "s3://shop-d-photos/p/"}, {"manifest": "s3://shop-d-photos/four.txt"})
        for body in listed:  # found while listing: the batch fails whole, nothing is sent
            how, message = refusal(d, submit(d, **body, output=out))
            assert how == "failed" and "more than 3 images" in message, message
        for name, says in (("large.txt", "limit 300"), ("binary.txt", "not UTF-8")):
            how, message = refusal(d, submit(d, manifest=f"s3://shop-d-photos/{name}", output=out))
            assert how == "failed" and says in message, message
        assert submit(d, uris=four[:3], output=out, queue="bulk").status_code == 201
        reply = submit(d, uris=four[:2], output=out)  # 3 queued + 2 > 4 outstanding
        assert reply.status_code == 429 and int(reply.headers["retry-after"]) > 0, reply.text
        assert submit(d, uris=four[:1], output=out).status_code == 201  # 4: within the quota


def crafted(batch: str, source: str) -> JobMessage:
    """A message of shop-b's batch, as someone with broker access could publish it."""
    bucket, _, key = source.partition("/")
    return JobMessage(f"shop-b/{batch}", "000000", bucket, key)


def test_a_worker_refuses_a_job_published_around_the_api(stack: LocalStack) -> None:
    """B's jobs crafted onto the broker (and batch records written around the API), pointing at
    A's buckets: failed, nothing written there."""
    settings = stack.settings(Settings())
    store = StatusStore.from_url(settings.redis_url, ttl=3600, max_deliveries=3)
    jobs = {  # the message, and the output its batch record names
        crafted("read-a", "shop-a-photos/photos/x.jpg"): "s3://shop-b-results/",
        crafted("write-a", "shop-b-photos/mine.jpg"): "s3://shop-a-results/",
        crafted("control", "shop-b-photos/none.jpg"): "s3://shop-b-results/",  # reaches S3
        crafted("as-a", "shop-a-photos/photos/x.jpg"): "s3://shop-b-results/",
    }
    app = create_app(settings)
    for job, output in jobs.items():
        source = f"s3://{job.input_bucket}/{job.input_key}"
        meta = {"output": output, "params": "{}", "queue": "bulk"}
        assert store.create_batch(job.batch_id, [(job.image_id, source)], meta)
        body: Any = job.encode()
        if job.batch_id.endswith("as-a"):  # the previous schema named a tenant: not believed
            body = {"schema": 2, "tenant": "shop-a", "output_bucket": "shop-a-results"}
            body |= {"batch_id": job.batch_id, "image_id": job.image_id}
            body |= {"input_bucket": job.input_bucket, "input_key": job.input_key}
        app.send_task(BLUR_TASK, args=[body], queue="bulk")
    stack.start_worker("worker1")
    errors = {job.batch_id: final(store, job).error for job in jobs}
    control = errors.pop("shop-b/control")
    assert not control.startswith("forbidden") and "none.jpg" in control
    for batch_id, error in errors.items():
        assert error.startswith("forbidden: "), (batch_id, error)
    storage = S3Storage(settings)
    assert list(storage.list("shop-a-results", "")) == []
    assert list(storage.list("shop-b-results", "")) == []


def final(store: StatusStore, job: JobMessage) -> ImageStatus:
    """The image's record once it is final (the worker is started by then)."""
    deadline = time.monotonic() + 120
    while True:
        image = store.image(job.batch_id, job.image_id)
        if image is not None and image.state in (ImageState.DONE, ImageState.FAILED):
            return image
        assert time.monotonic() < deadline, image
        time.sleep(0.2)


def test_the_operator_cli_names_the_tenant(stack: LocalStack, a_batch: dict[str, Any]) -> None:
    def status(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "producer.cli", "status", "s-01", *args]
        return subprocess.run(argv, env=stack.environment(), capture_output=True, text=True)

    mine = status("--tenant", "shop-a")
    assert mine.returncode == 0 and "1/1" in mine.stdout, mine.stderr
    for other in (status("--tenant", "shop-e"), status()):  # no such batch there
        assert other.returncode == 1 and "no batch 's-01'" in other.stderr
