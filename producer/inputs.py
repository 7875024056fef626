"""Expanding a batch's inputs into S3 objects: a list of URIs, an S3 prefix, or a manifest.

A manifest is a text file (local or in S3) with one input per line: an ``s3://`` URI, or a key
relative to the manifest's own bucket when the manifest is in S3. Blank lines and lines starting
with ``#`` are ignored. A prefix expands to the image files under it (by extension), leaving out
the batch's own output prefix so that results are never fed back in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from infra.errors import InvalidJob
from infra.storage import S3Uri, Storage

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")


def from_uris(uris: list[str]) -> list[S3Uri]:
    """Parse a list of ``s3://`` URIs; anything else is refused."""
    parsed = [S3Uri.parse(uri) for uri in uris]
    for uri in parsed:
        if not uri.key or uri.key.endswith("/"):
            raise InvalidJob(f"not an object URI (no key): {uri}")
    return parsed


def from_prefix(storage: Storage, prefix: str, *, exclude: S3Uri | None = None) -> list[S3Uri]:
    """Every image object under an ``s3://bucket/prefix``, in key order."""
    root = S3Uri.parse(prefix)
    return list(_images_under(storage, root, exclude))


def _images_under(storage: Storage, root: S3Uri, exclude: S3Uri | None) -> Iterator[S3Uri]:
    for key in storage.list(root.bucket, root.key):
        if not key.lower().endswith(IMAGE_EXTENSIONS):
            continue
        if (
            exclude
            and exclude.bucket == root.bucket
            and exclude.key
            and key.startswith(exclude.key)
        ):
            continue
        yield S3Uri(root.bucket, key)


def from_manifest(storage: Storage, manifest: str) -> list[S3Uri]:
    """The inputs listed in a manifest file, local path or ``s3://`` URI."""
    if manifest.startswith("s3://"):
        where = S3Uri.parse(manifest)
        text = storage.get(where.bucket, where.key).data.decode("utf-8")
        bucket: str | None = where.bucket
    else:
        path = Path(manifest)
        if not path.is_file():
            raise InvalidJob(f"manifest not found: {manifest}")
        text = path.read_text(encoding="utf-8")
        bucket = None
    return [_manifest_line(line, bucket) for line in _lines(text)]


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


def _manifest_line(line: str, bucket: str | None) -> S3Uri:
    if line.startswith("s3://"):
        return from_uris([line])[0]
    if bucket is None:
        raise InvalidJob(f"manifest line is not an s3:// URI: {line!r}")
    return S3Uri(bucket, line)
