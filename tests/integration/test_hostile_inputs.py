"""Poison and hostile inputs, all in one batch through the real stack.

Each input ends done (upright, colours and ICC profile right) or failed with a reason that names
what was wrong; permanent failures are not retried; the workers survive (same processes, still
answering), and the normal photos in the same batch are unaffected.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, ImageCms

from infra.celery_app import create_app
from infra.jobs import BlurParams
from infra.settings import Settings
from infra.status import ImageState, ImageStatus
from infra.storage import S3Storage, S3Uri
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack

pytestmark = pytest.mark.integration

BUCKET = "hostile"
OUTPUT = f"s3://{BUCKET}/out/"
MISSING_BUCKET = "blurq-no-such-bucket"
PARAMS = BlurParams(strength=20, model="u2netp")
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # stored turned the other way; EXIF 6 turns it back
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

Check = Callable[[Image.Image], None]
PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
"""An RGB ICC profile, made once: it carries its creation time."""


@dataclass(frozen=True)
class Case:
    """One hostile input: its key, its bytes (None: never uploaded) and what must happen."""

    key: str
    data: bytes | None
    reason: str = ""  # empty: the image must end done; else a text its failure reason contains
    check: Check | None = None  # for a done image: a property of its output


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def marked() -> Image.Image:
    """A 96x64 upright picture: red top-left quadrant on gray, so orientation can be read."""
    pixels = np.full((64, 96, 3), 128, np.uint8)
    pixels[:32, :48] = (220, 30, 30)
    return Image.fromarray(pixels)


def red_top_left(output: Image.Image) -> None:
    rgb = np.asarray(output.convert("RGB")).astype(np.float32)
    assert rgb.shape == (64, 96, 3)
    redness = rgb[..., 0] - rgb[..., 1]
    quadrants = [redness[:32, :48], redness[:32, 48:], redness[32:, :48], redness[32:, 48:]]
    means = [float(q.mean()) for q in quadrants]
    assert means[0] > 100 and max(means[1:]) < 40, means


def oriented(orientation: int) -> bytes:
    """The marked picture stored turned, with the EXIF orientation that turns it upright."""
    stored = marked()
    if orientation in ORIENTATION_TRANSPOSE:
        stored = stored.transpose(ORIENTATION_TRANSPOSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(stored, "JPEG", quality=95, exif=exif)


def png(width: int, height: int) -> bytes:
    """A PNG header claiming any size (no pixel data behind it)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def jpeg_bomb(side: int) -> bytes:
    """A small real JPEG whose frame header claims side x side pixels."""
    data = bytearray(save(Image.new("RGB", (64, 64), "white"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("P", (32, 32), colour) for colour in (1, 2, 3)]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def channels_equal(output: Image.Image) -> None:
    rgb = np.asarray(output.convert("RGB")).astype(np.int16)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() <= 6


def mean_near(expected: float) -> Check:
    def check(output: Image.Image) -> None:
        assert abs(float(np.asarray(output.convert("L")).mean()) - expected) < 10

    return check


def shape_is(height: int, width: int) -> Check:
    def check(output: Image.Image) -> None:
        assert (output.height, output.width) == (height, width)

    return check


def left_white(output: Image.Image) -> None:
    rgb = np.asarray(output.convert("RGB"))
    assert rgb[:, :40].min() > 200  # transparent there: composited over white
    assert rgb[:, -40:, 2].mean() > 150 > rgb[:, -40:, 0].mean()  # opaque blue stays blue


def icc_kept(profile: bytes) -> Check:
    def check(output: Image.Image) -> None:
        assert output.info.get("icc_profile") == profile

    return check


def cases() -> list[Case]:
    """The batch: hostile inputs of every kind, mixed with normal photos."""
    picture = marked()
    ramp16 = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (64, 1))
    gray = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))
    alpha = np.zeros((64, 96, 4), np.uint8)
    alpha[..., 2] = alpha[..., 3] = 255
    alpha[:, :48, 3] = 0
    rng = np.random.default_rng(6)
    photo = SAMPLES[2].jpeg(long_side=160)
    return [
        *(Case(f"photos/{s.name}.jpg", s.jpeg(long_side=160)) for s in SAMPLES[:3]),
        Case("bad/empty.jpg", b"", "empty input (0 bytes)"),
        Case("bad/truncated.jpg", photo[: len(photo) // 2], "truncated JPEG"),
        Case("bad/random.jpg", rng.bytes(4096), "cannot identify image format"),
        Case("bad/page.jpg", b"<!DOCTYPE html><html><body>hi</body></html>", "detected: HTML"),
        Case("bad/huge-header.png", png(100_000, 100_000), "10,000,000,000 pixels, over the limit"),
        Case("bad/bomb.jpg", jpeg_bomb(60_000), "3,600,000,000 pixels, over the limit"),
        Case("bad/animated.gif", animated_gif(), "detected: GIF"),
        Case("bad/photo.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(64), "HEIC"),
        Case("bad/picture.bmp", save(picture, "BMP"), "detected: BMP"),
        Case("bad/doc.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "detected: PDF"),
        Case("bad/vector.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "detected: SVG"),
        Case("bad/missing.jpg", None, "not found (NoSuchKey)"),
        Case(f"{MISSING_BUCKET}:unreadable.jpg", None, "not found (NoSuchBucket)"),
        Case("ok/cmyk.jpg", save(picture.convert("CMYK"), "JPEG", quality=95), "", red_top_left),
        Case("ok/16bit.png", save(Image.fromarray(ramp16), "PNG"), "", mean_near(127.5)),
        Case("ok/gray.jpg", save(Image.fromarray(gray), "JPEG"), "", channels_equal),
        Case("ok/palette.png", save(picture.quantize(8), "PNG"), "", red_top_left),
        Case("ok/alpha.png", save(Image.fromarray(alpha, "RGBA"), "PNG"), "", left_white),
        *(Case(f"ok/exif-{o}.jpg", oriented(o), "", red_top_left) for o in range(1, 9)),
        Case("ok/picture.tif", save(picture, "TIFF"), "", red_top_left),
        Case("ok/picture.webp", save(picture, "WEBP", lossless=True), "", red_top_left),
        Case("ok/one-pixel.png", save(Image.new("RGB", (1, 1), "red"), "PNG"), "", shape_is(1, 1)),
        Case(
            "ok/strip.png",
            save(Image.new("RGB", (20_000, 8), "gray"), "PNG"),
            "",
            shape_is(8, 20_000),
        ),
        Case("ok/with space.jpg", save(picture, "JPEG"), "", red_top_left),
        Case("ok/ünïcødé 写真.jpg", save(picture, "JPEG"), "", red_top_left),
        Case("ok/../dots.jpg", save(picture, "JPEG"), "", red_top_left),
        Case("ok/icc.jpg", save(picture, "JPEG", icc_profile=PROFILE), "", icc_kept(PROFILE)),
    ]


def uri(case: Case) -> str:
    bucket, _, key = case.key.rpartition(":")
    return f"s3://{bucket or BUCKET}/{key}"


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Client:
    settings = stack.settings(Settings())
    storage = S3Storage(settings)
    storage.ensure_bucket(BUCKET)
    for case in cases():
        if case.data is not None:
            storage.put(BUCKET, case.key, case.data, content_type="application/octet-stream")
    return Client(settings, storage=storage)


@pytest.fixture(scope="module")
def worker_pids(stack: LocalStack) -> dict[str, int]:
    return {name: stack.processes[name].pid for name in ("worker1", "worker2")}


@pytest.fixture(scope="module")
def results(client: Client, worker_pids: dict[str, int]) -> dict[str, ImageStatus]:
    batch = client.submit(uris=[uri(case) for case in cases()], output=OUTPUT, params=PARAMS)
    client.wait(batch, timeout=300)
    return {image.input: image for image in client.images(batch)}


def output_of(client: Client, image: ImageStatus) -> Image.Image:
    where = S3Uri.parse(image.output)
    return Image.open(io.BytesIO(client.storage.get(where.bucket, where.key).data))


def test_at_least_25_kinds_of_hostile_input_end_with_their_own_outcome(
    results: dict[str, ImageStatus],
) -> None:
    """Counted from the run's records, not the case list: every kind ended as it must."""
    hostile = [case for case in cases() if not case.key.startswith("photos/")]
    expected = {case.key: ImageState.FAILED if case.reason else ImageState.DONE for case in hostile}
    ended = {
        case.key.split("-")[0]  # the eight EXIF orientations are one kind
        for case in hostile
        if uri(case) in results and results[uri(case)].state is expected[case.key]
    }
    assert len(ended) >= 25, sorted(ended)
    # Each refusal with a reason of its own: one catch-all message for several kinds fails here.
    reasons = [reason_of(results[uri(case)], case) for case in hostile if case.reason]
    assert len(set(reasons)) == len(reasons), reasons


def reason_of(image: ImageStatus, case: Case) -> str:
    """The failure reason recorded for an image, with its own name taken out."""
    key = case.key.rpartition(":")[2]
    return image.error.replace(uri(case), "").replace(key, "").replace(key.rpartition("/")[2], "")


@pytest.mark.parametrize("case", [c for c in cases() if c.reason], ids=lambda c: c.key)
def test_refused_once_with_a_clear_reason(results: dict[str, ImageStatus], case: Case) -> None:
    image = results[uri(case)]
    assert image.state is ImageState.FAILED
    assert case.reason in image.error
    assert (image.deliveries, image.retries) == (1, 0)  # permanent: never retried


@pytest.mark.parametrize("case", [c for c in cases() if not c.reason], ids=lambda c: c.key)
def test_done_correctly(client: Client, results: dict[str, ImageStatus], case: Case) -> None:
    image = results[uri(case)]
    assert image.state is ImageState.DONE, image.error
    assert image.output.startswith(OUTPUT) and "/../" not in image.output
    assert (image.deliveries, image.retries) == (1, 0)
    output = output_of(client, image)
    if case.check is not None:
        case.check(output)
    else:  # a normal photo: every stage ran
        assert {"matting", "bokeh", "encode", "put"} <= set(image.timings)


def test_workers_survive_and_take_the_next_batch(
    stack: LocalStack,
    client: Client,
    results: dict[str, ImageStatus],
    worker_pids: dict[str, int],
) -> None:
    assert {name: stack.processes[name].pid for name in worker_pids} == worker_pids
    assert all(stack.processes[name].poll() is None for name in worker_pids)
    replies = create_app(client.settings).control.ping(timeout=2.0) or []
    assert {node.split("@")[0] for reply in replies for node in reply} >= set(worker_pids)
    after = client.submit(uris=[uri(case) for case in cases()[:3]], output=OUTPUT, params=PARAMS)
    assert client.wait(after, timeout=120).done == 3
