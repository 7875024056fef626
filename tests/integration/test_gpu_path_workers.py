"""The GPU path's code in real worker processes: with ``BLURQ_RENDERER=numpy`` a worker runs
``workers.gpu`` (matting on the backend, foreground, bokeh, cut-outs) on NumPy arrays, and its
pictures are the OpenCV path's, rendered here from the same photo, to PSNR >= 45 dB."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infra.jobs import BlurParams
from infra.models import ModelStore
from infra.settings import Settings
from infra.storage import S3Storage, S3Uri
from producer.client import Client
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack
from workers.decode import decode
from workers.matting import Matting
from workers.render import render

pytestmark = pytest.mark.integration

BUCKET = "gpu-path"
CASES = {
    "blur": BlurParams(strength=60, model="u2netp", format="png", save_matte=True),
    "white": BlurParams(model="u2netp", background="white", format="png"),
    "transparent": BlurParams(model="u2netp", background="transparent", format="png"),
}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gpu-path")


@pytest.fixture(scope="module")
def client(log_dir: Path) -> Iterator[Client]:
    with LocalStack(workers=0, flower=False, log_dir=log_dir) as stack:
        settings = stack.settings(Settings())
        storage = S3Storage(settings)
        storage.ensure_bucket(BUCKET)
        storage.put(BUCKET, "in/photo.jpg", photo(), content_type="image/jpeg")
        stack.start_worker("numpy-worker", {"BLURQ_RENDERER": "numpy"})
        stack.wait_for_workers(1, timeout=180)
        yield Client(settings, storage=storage)


def photo() -> bytes:
    """A real photo, small enough for the NumPy run of the GPU path to be quick."""
    image = Image.fromarray(SAMPLES[0].load()).convert("RGB").resize((384, 288))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_worker_on_the_gpu_path_gives_the_opencv_picture(
    client: Client, log_dir: Path, case: str
) -> None:
    params = CASES[case]
    uri = f"s3://{BUCKET}/in/photo.jpg"
    batch = client.submit(uris=[uri], output=f"s3://{BUCKET}/{case}/", params=params)
    status = client.wait(batch, timeout=300)
    assert (status.done, status.failed) == (1, 0), client.images(batch)
    (image,) = client.images(batch)
    assert image.output is not None
    out = S3Uri.parse(image.output)
    got = np.asarray(Image.open(io.BytesIO(client.storage.get(out.bucket, out.key).data)))
    rgb = decode(photo(), max_pixels=10**7).rgb
    settings = client.settings
    alpha = Matting("u2netp", ModelStore.from_settings(settings)).predict(rgb)
    expected = render(rgb, alpha, params)
    assert got.shape == expected.shape
    assert psnr(got, expected) >= 45.0, f"{case}: {psnr(got, expected):.1f} dB"
    log = (log_dir / "numpy-worker.log").read_text(errors="replace")
    (line,) = [line for line in log.splitlines() if f"{batch}/{image.image_id} done in" in line]
    assert line.endswith("; renderer numpy")  # the worker ran workers.gpu, not the OpenCV path
