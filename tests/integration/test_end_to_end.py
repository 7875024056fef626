"""The whole path on real processes: S3 server, redis-server, two Celery workers, Flower.

A batch of twelve real photos goes from an S3 prefix to blurred outputs in S3; resubmission is
idempotent; bad inputs fail with clear reasons while the rest completes; Flower sees the tasks.
"""

from __future__ import annotations

import io
import json
import time
import urllib.request
from functools import cache

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import ImageState
from infra.storage import S3Storage, S3Uri
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "e2e"
LONG_SIDE = 640


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    settings = stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    for sample in SAMPLES:
        storage.put(
            BUCKET,
            f"photos/{sample.name}.jpg",
            sample.jpeg(long_side=LONG_SIDE),
            content_type="image/jpeg",
        )
    return Client(settings, storage=storage)


@pytest.fixture(scope="module")
def batch(client: Client) -> str:
    batch_id = client.submit(
        prefix=f"s3://{BUCKET}/photos/",
        output=f"s3://{BUCKET}/out/",
        params=BlurParams(strength=60),
        batch_id="photos-1",
    )
    client.wait(batch_id, timeout=600)
    return batch_id


def decoded(storage: S3Storage, uri: str) -> NDArray[np.uint8]:
    where = S3Uri.parse(uri)
    return np.asarray(
        Image.open(io.BytesIO(storage.get(where.bucket, where.key).data)).convert("RGB")
    )


@cache
def matte_of(name: str) -> NDArray[np.float32]:
    from infra.models import ModelStore
    from workers.matting import Matting

    sample = next(s for s in SAMPLES if s.name == name)
    rgb = np.asarray(Image.open(io.BytesIO(sample.jpeg(long_side=LONG_SIDE))).convert("RGB"))
    return Matting("fusion", ModelStore(Settings().model_dir)).predict(rgb)


def sharpness(gray: NDArray[np.float32], mask: NDArray[np.bool_]) -> float:
    return float(cv2.Laplacian(gray, cv2.CV_32F)[mask].var())


def test_batch_of_real_photos_completes(client: Client, batch: str) -> None:
    status = client.status(batch)
    assert (status.total, status.done, status.failed) == (len(SAMPLES), len(SAMPLES), 0)
    assert status.queued == status.running == 0 and status.finished_at is not None
    for image in client.images(batch):
        assert image.state is ImageState.DONE and image.deliveries == 1
        assert set(image.timings) == {
            "get",
            "decode",
            "matting",
            "foreground",
            "bokeh",
            "encode",
            "put",
        }
        assert image.output.startswith(f"s3://{BUCKET}/out/photos/")


def test_subject_kept_and_background_blurred(client: Client, batch: str) -> None:
    checked = 0
    for image in client.images(batch):
        name = S3Uri.parse(image.input).key.split("/")[-1].removesuffix(".jpg")
        before = decoded(client.storage, image.input)
        after = decoded(client.storage, image.output)
        assert after.shape == before.shape
        alpha = matte_of(name)
        kernel = np.ones((9, 9), np.uint8)
        subject = cv2.erode((alpha > 0.98).astype(np.uint8), kernel).astype(bool)
        background = cv2.erode((alpha < 0.02).astype(np.uint8), kernel).astype(bool)
        if subject.mean() < 0.05 or background.mean() < 0.05:
            continue  # no clear subject/background split in this photo (e.g. a star field)
        change = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
        assert change[subject].mean() < 3.0, name  # only JPEG re-encoding noise
        gray_before = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gray_after = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = sharpness(gray_before, background)
        if detail < 20:
            continue  # the background is already out of focus: nothing left to measure
        assert sharpness(gray_after, background) / detail < 0.2, name
        checked += 1
    assert checked >= 5


def test_resubmitting_a_batch_id_processes_nothing_twice(client: Client, batch: str) -> None:
    before = {image.image_id: image for image in client.images(batch)}
    outputs = sorted(client.storage.list(BUCKET, "out/"))
    again = client.submit(
        prefix=f"s3://{BUCKET}/photos/",
        output=f"s3://{BUCKET}/out/",
        params=BlurParams(strength=60),
        batch_id=batch,
    )
    assert again == batch
    time.sleep(3)
    after = {image.image_id: image for image in client.images(batch)}
    assert {i: a.deliveries for i, a in after.items()} == {
        i: b.deliveries for i, b in before.items()
    }
    assert sorted(client.storage.list(BUCKET, "out/")) == outputs
    # A new batch over the same inputs and parameters finds the outputs already there.
    second = client.submit(
        prefix=f"s3://{BUCKET}/photos/",
        output=f"s3://{BUCKET}/out/",
        params=BlurParams(strength=60),
        batch_id="photos-2",
    )
    assert client.wait(second, timeout=300).done == len(SAMPLES)
    for image in client.images(second):
        assert "matting" not in image.timings  # reused, not rendered again
    assert sorted(client.storage.list(BUCKET, "out/")) == outputs


def test_bad_inputs_fail_clearly_and_the_rest_completes(client: Client) -> None:
    client.storage.put(
        BUCKET, "bad/notes.jpg", b"<html>not a photo</html>", content_type="text/html"
    )
    good = [f"s3://{BUCKET}/photos/{sample.name}.jpg" for sample in SAMPLES[:3]]
    uris = [*good, f"s3://{BUCKET}/bad/missing.jpg", f"s3://{BUCKET}/bad/notes.jpg"]
    batch_id = client.submit(
        uris=uris, output=f"s3://{BUCKET}/bad-out/", params=BlurParams(strength=20)
    )
    status = client.wait(batch_id, timeout=300)
    assert (status.done, status.failed) == (3, 2)
    failed = {image.input: image for image in client.images(batch_id, ImageState.FAILED)}
    assert "NoSuchKey" in failed[f"s3://{BUCKET}/bad/missing.jpg"].error
    assert "image" in failed[f"s3://{BUCKET}/bad/notes.jpg"].error.lower()
    assert all(image.deliveries == 1 for image in failed.values())  # permanent: not retried


def test_flower_lists_the_batch_tasks(stack: LocalStack, batch: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(f"{stack.flower_url}/api/tasks", timeout=5) as reply:
            tasks = json.loads(reply.read()).values()
        ours = [task for task in tasks if f"'batch_id': '{batch}'" in str(task.get("args"))]
        if len(ours) >= len(SAMPLES) and all(t["state"] == "SUCCESS" for t in ours):
            break
        assert time.monotonic() < deadline, f"Flower saw {len(ours)} tasks of {batch}"
        time.sleep(1)
    assert {task["name"] for task in ours} == {"blurq.blur_image"}
    with urllib.request.urlopen(f"{stack.flower_url}/api/workers?refresh=1", timeout=30) as reply:
        assert len(json.loads(reply.read())) >= 2


def test_a_message_breaking_the_contract_fails_its_image(client: Client) -> None:
    from infra.celery_app import BLUR_TASK

    assert client.status_store.create_batch("contract", [("000000", "s3://e2e/x.jpg")], {})
    message = {"schema": 99, "batch_id": "contract", "image_id": "000000"}
    client.app.send_task(BLUR_TASK, args=[message], queue="interactive")
    status = client.wait("contract", timeout=60)
    assert status.failed == 1
    assert "unsupported job schema 99" in client.images("contract")[0].error


def test_depth_maps_travel_with_their_photos(client: Client) -> None:
    photo = SAMPLES[0].jpeg(long_side=LONG_SIDE)
    height, width = np.asarray(Image.open(io.BytesIO(photo))).shape[:2]
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    client.storage.put(BUCKET, "depth/with.jpg", photo, content_type="image/jpeg")
    client.storage.put(BUCKET, "depth/with.depth.png", buffer.getvalue(), content_type="image/png")
    client.storage.put(BUCKET, "depth/without.jpg", photo, content_type="image/jpeg")
    batch_id = client.submit(
        uris=[f"s3://{BUCKET}/depth/with.jpg", f"s3://{BUCKET}/depth/without.jpg"],
        output=f"s3://{BUCKET}/depth-out/",
        params=BlurParams(strength=80, depth_suffix=".depth.png"),
    )
    status = client.wait(batch_id, timeout=300)
    assert (status.done, status.failed) == (1, 1)
    failed = client.images(batch_id, ImageState.FAILED)[0]
    assert failed.input.endswith("without.jpg") and "without.depth.png not found" in failed.error
    done = client.images(batch_id, ImageState.DONE)[0]
    after = decoded(client.storage, done.output).astype(np.float32)
    before = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")).astype(np.float32)
    top = slice(0, 40)  # the flag (left, near) and the wall (right, far) above the subject
    assert (
        np.abs(after[top, :30] - before[top, :30]).mean()
        < np.abs(after[top, -60:] - before[top, -60:]).mean()
    )
