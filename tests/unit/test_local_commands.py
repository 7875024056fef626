"""Local commands: ``blurq blur`` and ``matte`` run as a user runs them, what ``dev up`` prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from producer.cli.local import addresses
from producer.local.samples import SAMPLES
from producer.local.stack import LocalStack


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)


def blurq(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "producer.cli", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for sample in SAMPLES[:2]:
        path = folder / f"{sample.name}.jpg"
        path.write_bytes(sample.jpeg(long_side=400))
        paths.append(path)
    return paths


@pytest.mark.services  # the model weights
def test_matte_writes_one_single_channel_png_per_input(photos: list[Path], tmp_path: Path) -> None:
    result = blurq("matte", *photos, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    for photo in photos:
        values = pixels(tmp_path / f"{photo.stem}.png")
        assert values.ndim == 2 and values.shape == pixels(photo).shape[:2]  # mode L, same size
        assert values.max() > 200 and values.min() < 50  # a subject and a background


def test_blur_with_a_given_matte(photos: list[Path], tmp_path: Path) -> None:
    photo = photos[0]
    height, width = pixels(photo).shape[:2]
    matte = np.zeros((height, width), np.uint8)
    matte[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 255
    Image.fromarray(matte).save(tmp_path / "matte.png")
    result = blurq(
        "blur",
        photo,
        "--out",
        tmp_path / "out",
        "--matte",
        tmp_path / "matte.png",
        "--strength",
        "80",
        "--format",
        "png",
    )
    assert result.returncode == 0, result.stderr
    before = pixels(photo).astype(np.int16)
    after = pixels(tmp_path / "out" / f"{photo.stem}.png").astype(np.int16)
    inside = (
        slice(height // 4 + 2, 3 * height // 4 - 2),
        slice(width // 4 + 2, 3 * width // 4 - 2),
    )
    assert np.abs(after[inside] - before[inside]).max() == 0  # α = 1 is untouched
    assert np.abs(after[:20, :20] - before[:20, :20]).mean() > 1  # the corner is blurred


def test_unreadable_inputs_exit_non_zero_with_one_line_each(
    photos: list[Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(small)
    result = blurq(
        "blur", photos[0], junk, tmp_path / "missing.jpg", "--out", tmp_path / "o", "--matte", small
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.strip() for line in lines)
    assert "junk.jpg" in lines[1] and "missing.jpg" in lines[2]
    assert "12x10" in lines[0]  # the matte does not fit the photo


def test_blur_with_a_depth_map(photos: list[Path], tmp_path: Path) -> None:
    photo = photos[0]
    height, width = pixels(photo).shape[:2]
    matte = np.zeros((height, width), np.uint8)
    matte[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3] = 255
    Image.fromarray(matte).save(tmp_path / "matte.png")
    depth = np.zeros((height, width), np.uint8)
    depth[:, width // 2 :] = 255  # the right half is far away, the left half at the subject
    Image.fromarray(depth).save(tmp_path / "depth.png")
    result = blurq(
        "blur",
        photo,
        "--out",
        tmp_path / "o",
        "--matte",
        tmp_path / "matte.png",
        "--depth",
        tmp_path / "depth.png",
        "--strength",
        "60",
        "--format",
        "png",
    )
    assert result.returncode == 0, result.stderr
    before = pixels(photo).astype(np.float32)
    after = pixels(tmp_path / "o" / f"{photo.stem}.png").astype(np.float32)
    band = slice(0, height // 4)  # above the subject
    left = np.abs(after[band, : width // 3] - before[band, : width // 3]).mean()
    right = np.abs(after[band, 2 * width // 3 :] - before[band, 2 * width // 3 :]).mean()
    assert left < 1.0 < right  # depth 0 stays sharp, depth 1 is blurred


def test_one_depth_file_for_several_inputs_is_refused(photos: list[Path], tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "depth.png")
    result = blurq("blur", *photos, "--out", tmp_path / "o", "--depth", tmp_path / "depth.png")
    assert result.returncode == 2 and "one input" in result.stderr


def test_a_local_stack_has_fresh_secrets_and_dev_up_prints_them() -> None:
    one, two = LocalStack(), LocalStack()  # not started: only their settings are read
    for name in ("redis_password", "flower_password", "api_key", "webhook_secret"):
        assert getattr(one, name) != getattr(two, name) and len(getattr(one, name)) >= 24
    assert one.redis_url.startswith(f"redis://:{one.redis_password}@127.0.0.1:")
    environment = one.environment()
    assert environment["BLURQ_FLOWER_BASIC_AUTH"] == f"blurq:{one.flower_password}"
    assert environment["BLURQ_REDIS_URL"] == one.redis_url
    printed = addresses(one)
    assert one.api_key in printed and f"password {one.flower_password}" in printed
    assert "key=" not in printed  # no key in a URL (browser history, access logs)


def test_blur_onto_white_with_the_matte_saved_and_transparent_jpeg_refused(
    photos: list[Path], tmp_path: Path
) -> None:
    photo = photos[0]
    height, width = pixels(photo).shape[:2]
    matte = np.zeros((height, width), np.uint8)
    matte[:, width // 2 :] = 255
    Image.fromarray(matte).save(tmp_path / "matte.png")
    out = tmp_path / "out"
    given = ("--matte", tmp_path / "matte.png", "--format", "png")
    result = blurq("blur", photo, "--out", out, *given, "--background", "white", "--save-matte")
    assert result.returncode == 0, result.stderr
    after = pixels(out / f"{photo.stem}.png")
    assert (after[:, : width // 2] == 255).all()
    assert np.array_equal(after[:, width // 2 :], pixels(photo)[:, width // 2 :])
    assert np.array_equal(pixels(out / f"{photo.stem}.matte.png"), matte)
    refused = blurq("blur", photo, "--out", out, "--matte", tmp_path / "matte.png",
                    "--background", "transparent")  # fmt: skip
    assert refused.returncode == 2 and "transparent" in refused.stderr
