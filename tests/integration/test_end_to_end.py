"""The whole path on real processes: S3 server, redis-server, two Celery workers, Flower.

A batch of twelve real photos goes from an S3 prefix to blurred outputs in S3; resubmission is
idempotent; bad inputs fail with clear reasons while the rest completes; Flower sees the tasks.
"""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from infra.celery_app import BLUR_TASK
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


KNOWN = {
    "astronaut": ((0.15, 0.55, 0.45, 0.75), (0.0, 0.05, 0.07, 0.45)),
    "grace-hopper": ((0.35, 0.7, 0.65, 0.9), (0.0, 0.0, 0.12, 0.4)),
    "camera": ((0.12, 0.4, 0.28, 0.65), (0.85, 0.55, 0.98, 0.75)),
    "coffee": ((0.4, 0.12, 0.55, 0.3), (0.0, 0.0, 0.1, 0.3)),
}
"""Boxes (x0, y0, x1, y1 as fractions) that a person marked as surely subject (suit, jacket,
coat, cup) and surely textured background (flags, grass, table) in four samples."""


def box(image: NDArray[np.uint8], where: tuple[float, float, float, float]) -> NDArray[np.bool_]:
    """A mask of the box, in the image's pixels."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = where
    mask = np.zeros((height, width), bool)
    mask[int(y0 * height) : int(y1 * height), int(x0 * width) : int(x1 * width)] = True
    return mask


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
    """Judged on regions known beforehand, not on the pipeline's own matte."""
    outputs = {image.input: image.output for image in client.images(batch)}
    for name, (subject_box, background_box) in KNOWN.items():
        uri = f"s3://{BUCKET}/photos/{name}.jpg"
        before = decoded(client.storage, uri)
        after = decoded(client.storage, outputs[uri])
        assert after.shape == before.shape
        subject, background = box(before, subject_box), box(before, background_box)
        change = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
        assert change[subject].mean() < 3.0, name  # only JPEG re-encoding noise
        gray_before = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gray_after = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY).astype(np.float32)
        detail = sharpness(gray_before, background)
        assert detail > 20, name  # the box was chosen for its texture
        assert sharpness(gray_after, background) / detail < 0.2, name


@contextmanager
def published(client: Client) -> Iterator[list[str]]:
    """The task names of the messages the client pushes onto the broker inside the block."""
    sent: list[str] = []
    push = client.publisher.push

    def counting(queue: str, values: list[str]) -> None:
        sent.extend(json.loads(value)["headers"]["task"] for value in values)
        push(queue, values)

    client.publisher.push = counting  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        client.publisher.push = push  # type: ignore[method-assign]


def test_resubmitting_a_batch_id_sends_nothing_twice(client: Client, batch: str) -> None:
    outputs = sorted(client.storage.list(BUCKET, "out/"))
    with published(client) as sent:
        again = client.submit(
            prefix=f"s3://{BUCKET}/photos/",
            output=f"s3://{BUCKET}/out/",
            params=BlurParams(strength=60),
            batch_id=batch,
        )
    assert again == batch and sent == []
    # A new batch over the same inputs and parameters sends every image (so the count above
    # sees what is published) and finds the outputs already there.
    with published(client) as sent:
        second = client.submit(
            prefix=f"s3://{BUCKET}/photos/",
            output=f"s3://{BUCKET}/out/",
            params=BlurParams(strength=60),
            batch_id="photos-2",
        )
    assert sent == [BLUR_TASK] * len(SAMPLES)
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
        asked = urllib.request.Request(
            f"{stack.flower_url}/api/tasks", headers=stack.flower_headers
        )
        with urllib.request.urlopen(asked, timeout=5) as reply:
            tasks = json.loads(reply.read()).values()
        # Task ids name the image: "<batch id>:<image id>" (infra.publish).
        ours = [task for task in tasks if task["uuid"].startswith(f"{batch}:")]
        if len(ours) >= len(SAMPLES) and all(t["state"] == "SUCCESS" for t in ours):
            break
        assert time.monotonic() < deadline, f"Flower saw {len(ours)} tasks of {batch}"
        time.sleep(1)
    assert {task["name"] for task in ours} == {"blurq.blur_image"}
    workers_url = f"{stack.flower_url}/api/workers?refresh=1"
    workers = urllib.request.Request(workers_url, headers=stack.flower_headers)
    with urllib.request.urlopen(workers, timeout=30) as reply:
        assert len(json.loads(reply.read())) >= 2


def test_a_message_breaking_the_contract_fails_its_image(client: Client) -> None:
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


def test_white_cutouts_with_mattes_and_brought_mattes(client: Client) -> None:
    """A white-background batch saves its mattes; a brought matte replaces the model's."""
    sample = next(sample for sample in SAMPLES if sample.name in KNOWN)
    photo = sample.jpeg(long_side=LONG_SIDE)
    before = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    height, width = before.shape[:2]
    white = BlurParams(background="white", save_matte=True)
    uri = f"s3://{BUCKET}/photos/{sample.name}.jpg"
    cutouts = client.submit(uris=[uri], output=f"s3://{BUCKET}/white/", params=white)
    assert client.wait(cutouts, timeout=300).done == 1
    output = client.images(cutouts)[0].output
    after = decoded(client.storage, output)
    subject, background = (box(before, where) for where in KNOWN[sample.name])
    assert (after[background] >= 250).all(axis=-1).mean() > 0.95
    assert np.abs(after[subject].astype(float) - before[subject]).mean() < 3.0
    saved = S3Uri.parse(output.rsplit(".", 1)[0] + ".matte.png")
    assert Image.open(io.BytesIO(client.storage.get(saved.bucket, saved.key).data)).mode == "L"

    matte = np.zeros((height, width), np.uint8)
    matte[:, width // 2 :] = 255
    for name, data in [("a.jpg", photo), ("a.matte.png", png(matte)), ("b.jpg", photo),
                       ("c.jpg", photo), ("c.matte.png", png(matte[::2]))]:  # fmt: skip
        client.storage.put(BUCKET, f"own/{name}", data, content_type="application/octet-stream")
    own = BlurParams(strength=80, matte_suffix=".matte.png")
    uris = [f"s3://{BUCKET}/own/{name}.jpg" for name in "abc"]
    batch = client.submit(uris=uris, output=f"s3://{BUCKET}/own-out/", params=own)
    status = client.wait(batch, timeout=300)
    assert (status.done, status.failed) == (1, 2)
    failed = {image.input[-5:]: image.error for image in client.images(batch, ImageState.FAILED)}
    assert "b.matte.png not found" in failed["b.jpg"] and "same size" in failed["c.jpg"]
    result = decoded(client.storage, client.images(batch, ImageState.DONE)[0].output)
    right, left = np.s_[:, width // 2 + 4 :], np.s_[:, : width // 2 - 40]
    assert np.abs(result[right].astype(float) - before[right]).mean() < 3.0
    assert np.abs(result[left].astype(float) - before[left]).mean() > 5.0


def png(pixels: NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
