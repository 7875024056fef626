"""Expanding a batch's inputs into S3 objects: a list of URIs, an S3 prefix, or a manifest.

A list of URIs is parsed whole (``from_uris``: it came in the request); a prefix or a manifest is
streamed (``stream``), so that a batch of any size is expanded in bounded memory.

A manifest is a text file (local or in S3) with one input per line: an ``s3://`` URI, or a key
relative to the manifest's own bucket when the manifest is in S3. Blank lines and lines starting
with ``#`` are ignored. A prefix expands to the image files under it (by extension), leaving out
the batch's own output prefix so that results are never fed back in.

Every kind stops at ``cap`` images (the tenant's images per batch): a prefix is listed, and a
manifest's lines are read, only up to cap + 1. A manifest is streamed line by line, never held
whole: one larger than ``MANIFEST_BYTES_PER_IMAGE`` × cap bytes is refused before it is downloaded
when its size is known, and the read stops past that many bytes whatever size was reported.

Confinement: ``confine`` checks what a request names (URIs, prefix, manifest, output) against
the tenant's prefixes before any S3 call; ``confine_found`` checks what the expansion found
(manifest lines, depth maps, mattes) before anything reads them. Both raise ``Forbidden`` with
one text that says nothing about what is there. An input inside the output prefix, or a prefix that
overlaps it, is refused: outputs would be fed back in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from infra.errors import InvalidJob
from infra.jobs import depth_key, normalise_prefix
from infra.storage import S3Uri, Storage, text_lines
from infra.tenants import Limits, Tenant

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")
MANIFEST_BYTES_PER_IMAGE = 100
"""A manifest may hold this many bytes per image the cap allows (an S3 URI per line)."""
DEFAULT_CAP = Limits().images_per_batch
"""Images per batch when no tenant limit is given."""


def confine(
    tenant: Tenant,
    output: S3Uri,
    uris: Sequence[str] | None,
    prefix: str | None,
    manifest: str | None,
) -> None:
    """Forbidden unless every place the request names lies under the tenant's prefixes."""
    if sum(value is not None for value in (uris, prefix, manifest)) != 1:
        raise InvalidJob("give exactly one of uris, prefix or manifest")
    tenant.check_write(output)
    for uri in uris or ():
        tenant.check_read(S3Uri.parse(uri))
    if prefix is not None:
        tenant.check_read(S3Uri.parse(prefix), "prefix")
        if _overlap(S3Uri.parse(prefix), output):
            raise InvalidJob(f"the prefix {prefix} and the output {output} overlap")
    if manifest is not None and manifest.startswith("s3://"):
        tenant.check_read(S3Uri.parse(manifest), "manifest")


def confine_found(
    tenant: Tenant,
    found: Iterable[S3Uri],
    depth_suffix: str | None,
    output: S3Uri,
    matte_suffix: str | None = None,
) -> None:
    """Forbidden unless every input found, its depth map and matte lie in the tenant's prefixes."""
    beside = ((depth_suffix, "depth map"), (matte_suffix, "matte"))
    for uri in found:
        tenant.check_read(uri)
        for suffix, what in beside:
            if suffix is not None:
                tenant.check_read(S3Uri(uri.bucket, depth_key(uri.key, suffix)), what)
        if uri.bucket == output.bucket and uri.key.startswith(normalise_prefix(output.key)):
            raise InvalidJob(f"input {uri} lies inside the output prefix {output}")


def _overlap(prefix: S3Uri, output: S3Uri) -> bool:
    """True when the listing of prefix would find outputs, or the output holds the prefix."""
    # The prefix as S3 lists it (literally: "in" also lists "in-out/"); outputs go where the
    # worker writes them (normalised).
    written = normalise_prefix(output.key)
    same = prefix.bucket == output.bucket
    return same and (written.startswith(prefix.key) or prefix.key.startswith(written))


def from_uris(uris: list[str], *, cap: int = DEFAULT_CAP) -> list[S3Uri]:
    """Parse a list of ``s3://`` URIs; anything else is refused."""
    parsed = list(_capped((S3Uri.parse(uri) for uri in uris), cap, "uris"))
    for uri in parsed:
        if not uri.key or uri.key.endswith("/"):
            raise InvalidJob(f"not an object URI (no key): {uri}")
    return parsed


def stream(
    storage: Storage,
    *,
    prefix: str | None = None,
    manifest: str | None = None,
    exclude: S3Uri | None = None,
    cap: int = DEFAULT_CAP,
) -> Iterator[S3Uri]:
    """The inputs under a prefix or listed in a manifest, one at a time as they are read, never
    held whole; InvalidJob once there are more than cap."""
    if prefix is not None:
        root = S3Uri.parse(prefix)
        return _capped(_images_under(storage, root, exclude), cap, f"prefix {root}")
    assert manifest is not None
    max_bytes = MANIFEST_BYTES_PER_IMAGE * cap
    if not manifest.startswith("s3://"):
        return _capped(_local_manifest(manifest, max_bytes), cap, f"manifest {manifest}")
    where = S3Uri.parse(manifest)
    lines = storage.lines(where.bucket, where.key, max_bytes=max_bytes)
    return _capped(_manifest_inputs(lines, where.bucket), cap, f"manifest {manifest}")


def _images_under(storage: Storage, root: S3Uri, exclude: S3Uri | None) -> Iterator[S3Uri]:
    # The output prefix as jobs write it ("out" is "out/"), so "outx/..." is not left out.
    written = normalise_prefix(exclude.key) if exclude and exclude.bucket == root.bucket else ""
    for key in storage.list(root.bucket, root.key):
        if key.lower().endswith(IMAGE_EXTENSIONS) and not (written and key.startswith(written)):
            yield S3Uri(root.bucket, key)


def _local_manifest(manifest: str, max_bytes: int) -> Iterator[S3Uri]:
    path = Path(manifest)
    if not path.is_file():
        raise InvalidJob(f"manifest not found: {manifest}")
    if path.stat().st_size > max_bytes:  # the read stops at the cap too, should the file grow
        raise InvalidJob(f"manifest {manifest} is larger than {max_bytes} bytes")
    with path.open("rb") as file:
        lines = text_lines(file.read, max_bytes=max_bytes, name=f"manifest {manifest}")
        yield from _manifest_inputs(lines, None)


def _capped(found: Iterable[S3Uri], cap: int, where: str) -> Iterator[S3Uri]:
    """The inputs found, read no further than cap + 1; InvalidJob past cap."""
    for count, uri in enumerate(found, 1):
        if count > cap:
            raise InvalidJob(f"{where}: more than {cap} images (the limit per batch)")
        yield uri


def _manifest_inputs(lines: Iterable[str], bucket: str | None) -> Iterator[S3Uri]:
    """Each input line parsed as it is read; blank lines and ``#`` comments skipped."""
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            yield _manifest_line(line, bucket)


def _manifest_line(line: str, bucket: str | None) -> S3Uri:
    if line.startswith("s3://"):
        return from_uris([line])[0]
    if bucket is None:
        raise InvalidJob(f"manifest line is not an s3:// URI: {line!r}")
    return S3Uri(bucket, line)
