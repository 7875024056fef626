"""Expanding batch inputs: URI lists, prefixes (images only, outputs excluded), manifests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from infra import storage as storage_module
from infra.errors import InputTooLarge, InvalidJob
from infra.storage import S3Storage, S3Uri
from producer import inputs

MANIFEST = (
    b"# photos\r\ns3://bkt/one.jpg\r\n\r\n  s3://bkt/two.jpg  \n#s3://bkt/no.jpg\nrel/three.jpg"
)
"""CRLF and LF, blank lines, comments, padding and no final line end, as manifests come."""


def test_prefix_lists_images_and_skips_the_output_prefix(storage: S3Storage) -> None:
    storage.ensure_bucket("inputs")
    for key in ("p/a.jpg", "p/b.PNG", "p/notes.txt", "p/sub/c.webp", "p/out/done.jpg", "q/x.jpg"):
        storage.put("inputs", key, b"x", content_type="application/octet-stream")
    found = list(inputs.stream(storage, prefix="s3://inputs/p/", exclude=S3Uri("inputs", "p/out/")))
    assert [uri.key for uri in found] == ["p/a.jpg", "p/b.PNG", "p/sub/c.webp"]


def test_manifest_on_disk_and_in_s3(storage: S3Storage, tmp_path: Path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text("# photos\ns3://bkt/one.jpg\n\n  s3://bkt/two.jpg  \n")
    assert list(inputs.stream(storage, manifest=str(manifest))) == [
        S3Uri("bkt", "one.jpg"),
        S3Uri("bkt", "two.jpg"),
    ]
    storage.ensure_bucket("manifests")
    storage.put(
        "manifests", "m.txt", b"rel/three.jpg\ns3://other/four.jpg\n", content_type="text/plain"
    )
    assert list(inputs.stream(storage, manifest="s3://manifests/m.txt")) == [
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
        list(inputs.stream(storage, manifest=str(local)))
    with pytest.raises(InvalidJob, match="not found"):
        list(inputs.stream(storage, manifest=str(tmp_path / "missing.txt")))


class Counted:
    """Every body get_object hands out, wrapped to count the bytes read from it."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, storage: S3Storage, size: int | None
    ) -> None:
        self.read = 0
        get_object = storage.client.get_object

        def counting(**kwargs: Any) -> dict[str, Any]:
            response: dict[str, Any] = get_object(**kwargs)
            original = response["Body"].read

            def read(amt: int | None = None) -> bytes:
                data: bytes = original(amt)
                self.read += len(data)
                return data

            monkeypatch.setattr(response["Body"], "read", read)
            if size is not None:  # what a lying server would report
                response["ContentLength"] = size
            return response

        monkeypatch.setattr(storage.client, "get_object", counting)


def test_manifest_lines_parse_as_before(storage: S3Storage, tmp_path: Path) -> None:
    local = tmp_path / "crlf.txt"
    local.write_bytes(MANIFEST.replace(b"rel/", b"s3://bkt/"))
    expected = [S3Uri("bkt", "one.jpg"), S3Uri("bkt", "two.jpg"), S3Uri("bkt", "three.jpg")]
    assert list(inputs.stream(storage, manifest=str(local))) == expected
    storage.ensure_bucket("manifests")
    storage.put("manifests", "crlf.txt", MANIFEST, content_type="text/plain")
    expected[2] = S3Uri("manifests", "rel/three.jpg")
    assert list(inputs.stream(storage, manifest="s3://manifests/crlf.txt")) == expected


def test_a_manifest_over_the_byte_cap_is_refused_unread(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.ensure_bucket("manifests")
    storage.put("manifests", "big.txt", b"s3://bkt/a.jpg\n" * 100, content_type="text/plain")
    counted = Counted(monkeypatch, storage, size=None)
    with pytest.raises(InputTooLarge, match=re.escape("big.txt is 1500 bytes, limit 300")):
        list(inputs.stream(storage, manifest="s3://manifests/big.txt", cap=3))
    assert counted.read == 0  # S3 said how large it is: refused before downloading


def test_a_manifest_that_lies_about_its_size_is_cut_at_the_cap(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.ensure_bucket("manifests")
    comments = b"# padding, no images here\n" * 40_000  # ~1 MB, reported as 10 bytes
    storage.put("manifests", "liar.txt", comments, content_type="text/plain")
    counted = Counted(monkeypatch, storage, size=10)
    with pytest.raises(InputTooLarge, match=re.escape("liar.txt is larger than 1000 bytes")):
        list(inputs.stream(storage, manifest="s3://manifests/liar.txt", cap=10))
    assert counted.read == 1001  # the cap and one byte


def test_a_manifest_is_read_no_further_than_cap_plus_one_image(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.ensure_bucket("manifests")
    lines = b"".join(b"s3://bkt/%05d.jpg\n" for n in range(10))  # 19 bytes a line
    storage.put("manifests", "many.txt", lines, content_type="text/plain")
    monkeypatch.setattr(storage_module, "CHUNK_BYTES", 19)
    counted = Counted(monkeypatch, storage, size=None)
    refusal = re.escape("manifest s3://manifests/many.txt: more than 3 images")
    with pytest.raises(InvalidJob, match=refusal):
        list(inputs.stream(storage, manifest="s3://manifests/many.txt", cap=3))
    assert counted.read == 4 * 19  # four lines of ten


def test_a_manifest_that_is_not_utf8_is_refused(storage: S3Storage, tmp_path: Path) -> None:
    local = tmp_path / "binary.txt"
    local.write_bytes(bytes(range(256)))
    with pytest.raises(InvalidJob, match=re.escape(f"manifest {local} is not UTF-8 text")):
        list(inputs.stream(storage, manifest=str(local)))
    storage.ensure_bucket("manifests")
    storage.put("manifests", "binary.txt", bytes(range(256)), content_type="text/plain")
    with pytest.raises(InvalidJob, match=re.escape("s3://manifests/binary.txt is not UTF-8 text")):
        list(inputs.stream(storage, manifest="s3://manifests/binary.txt"))


def test_a_local_manifest_over_the_byte_cap_is_refused(tmp_path: Path) -> None:
    local = tmp_path / "big.txt"
    local.write_bytes(b"s3://bkt/a.jpg\n" * 100)
    with pytest.raises(InvalidJob, match=re.escape(f"manifest {local} is larger than 300 bytes")):
        list(inputs.stream(None, manifest=str(local), cap=3))  # type: ignore[arg-type]  # no S3 needed


def test_an_output_prefix_without_its_slash_leaves_out_only_its_own_folder() -> None:
    class Listing:
        def list(self, bucket: str, prefix: str) -> list[str]:
            return ["outx/a.jpg", "out/b.jpg", "c.jpg"]

    found = list(inputs.stream(Listing(), prefix="s3://bkt/", exclude=S3Uri("bkt", "out")))  # type: ignore[arg-type]
    assert [str(uri) for uri in found] == ["s3://bkt/outx/a.jpg", "s3://bkt/c.jpg"]
