"""Expanding batch inputs: URI lists, prefixes (images only, outputs excluded), manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import InvalidJob
from infra.storage import S3Storage, S3Uri
from producer import inputs


def test_prefix_lists_images_and_skips_the_output_prefix(storage: S3Storage) -> None:
    storage.ensure_bucket("inputs")
    for key in ("p/a.jpg", "p/b.PNG", "p/notes.txt", "p/sub/c.webp", "p/out/done.jpg", "q/x.jpg"):
        storage.put("inputs", key, b"x", content_type="application/octet-stream")
    found = inputs.from_prefix(storage, "s3://inputs/p/", exclude=S3Uri("inputs", "p/out/"))
    assert [uri.key for uri in found] == ["p/a.jpg", "p/b.PNG", "p/sub/c.webp"]


def test_manifest_on_disk_and_in_s3(storage: S3Storage, tmp_path: Path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text("# photos\ns3://bkt/one.jpg\n\n  s3://bkt/two.jpg  \n")
    assert inputs.from_manifest(storage, str(manifest)) == [
        S3Uri("bkt", "one.jpg"),
        S3Uri("bkt", "two.jpg"),
    ]
    storage.ensure_bucket("manifests")
    storage.put(
        "manifests", "m.txt", b"rel/three.jpg\ns3://other/four.jpg\n", content_type="text/plain"
    )
    assert inputs.from_manifest(storage, "s3://manifests/m.txt") == [
        S3Uri("manifests", "rel/three.jpg"),
        S3Uri("other", "four.jpg"),
    ]


def test_bad_inputs_are_refused(storage: S3Storage, tmp_path: Path) -> None:
    with pytest.raises(InvalidJob):
        inputs.from_uris(["https://example.invalid/a.jpg"])
    with pytest.raises(InvalidJob):
        inputs.from_uris(["s3://bucket/folder/"])
    local = tmp_path / "local.txt"
    local.write_text("relative/key.jpg\n")
    with pytest.raises(InvalidJob, match="not an s3"):
        inputs.from_manifest(storage, str(local))
    with pytest.raises(InvalidJob, match="not found"):
        inputs.from_manifest(storage, str(tmp_path / "missing.txt"))
