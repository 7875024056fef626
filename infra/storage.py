"""S3 storage behind a small interface: get, lines, put, head, list, with errors mapped to our tree.

boto3 does the retrying (``standard`` mode: exponential backoff with full jitter on throttling such
as 503 SlowDown, on 5xx answers and on connection errors); what still fails afterwards becomes a
``StorageUnavailable`` (transient, the task retries later) or ``InputMissing`` (permanent).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from infra.errors import InputMissing, InputTooLarge, InvalidJob, StorageUnavailable
from infra.settings import Settings

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
_INVALID = {"InvalidBucketName"}  # the request can never succeed: permanent, never a retry
_NOT_FOUND = {"NoSuchKey", "404", "NoSuchBucket", "NotFound"}
_FORBIDDEN = {"AccessDenied", "403", "AllAccessDisabled", "InvalidObjectState"}
CHUNK_BYTES = 64 * 1024
"""How much ``text_lines`` asks for per read: what it holds besides one partial line."""


@dataclass(frozen=True)
class S3Uri:
    """An ``s3://bucket/key`` address."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split ``s3://bucket/key``; raise InvalidJob for anything else."""
        if not uri.startswith("s3://"):
            raise InvalidJob(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidJob(f"s3 URI without a bucket: {uri!r}")
        if not bucket_name_is_valid(bucket):
            raise InvalidJob(
                f"not a valid S3 bucket name in {uri[:200]!r} (3-63 lowercase letters, digits, "
                "dots and hyphens, starting and ending with a letter or digit, not an IP address)"
            )
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def bucket_name_is_valid(name: str) -> bool:
    """True when name follows S3's bucket naming rules (so S3 could ever answer for it)."""
    return (
        _BUCKET.fullmatch(name) is not None
        and ".." not in name
        and _IP_ADDRESS.fullmatch(name) is None
        and not name.startswith(_RESERVED_PREFIXES)
        and not name.endswith(_RESERVED_SUFFIXES)
    )


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes with the ETag that identifies this version of it."""

    data: bytes
    etag: str


class Head(NamedTuple):
    """What a HEAD request tells of an object: its size, its ETag and its user metadata."""

    size: int
    etag: str
    metadata: dict[str, str]


class Storage(Protocol):
    """What the pipeline and the producer need from an object store."""

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject: ...

    def lines(self, bucket: str, key: str, *, max_bytes: int) -> Iterator[str]: ...

    def head(self, bucket: str, key: str) -> Head | None: ...

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None: ...

    def list(self, bucket: str, prefix: str) -> Iterator[str]: ...


class S3Storage:
    """Storage on S3 or any S3-compatible endpoint (MinIO, the local S3 server)."""

    def __init__(self, settings: Settings) -> None:
        self.client = _client(settings)

    def get(self, bucket: str, key: str, *, max_bytes: int | None = None) -> StoredObject:
        """Read a whole object; refuse it before downloading when it exceeds max_bytes."""
        with _mapped_errors(bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key)
            size = int(response["ContentLength"])
            if max_bytes is not None and size > max_bytes:
                response["Body"].close()
                raise InputTooLarge(f"s3://{bucket}/{key} is {size} bytes, limit {max_bytes}")
            return StoredObject(response["Body"].read(), response["ETag"].strip('"'))

    def lines(self, bucket: str, key: str, *, max_bytes: int) -> Iterator[str]:
        """An object's UTF-8 text lines, streamed; InputTooLarge past max_bytes read."""
        with _mapped_errors(bucket, key):
            response = self.client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                size = int(response.get("ContentLength", 0))
                if size > max_bytes:  # refused before downloading, as get does
                    raise InputTooLarge(f"s3://{bucket}/{key} is {size} bytes, limit {max_bytes}")
                # ContentLength may lie or be absent: the read itself stops at the cap as well.
                yield from text_lines(body.read, max_bytes=max_bytes, name=f"s3://{bucket}/{key}")
            finally:
                body.close()

    def head(self, bucket: str, key: str) -> Head | None:
        """Size, ETag and user metadata of an object, or None when it does not exist."""
        try:
            with _mapped_errors(bucket, key):
                response = self.client.head_object(Bucket=bucket, Key=key)
        except InputMissing:
            return None
        etag = response["ETag"].strip('"')
        return Head(int(response["ContentLength"]), etag, dict(response.get("Metadata", {})))

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write an object whole, with user metadata (``x-amz-meta-*``: lower-case ASCII)."""
        with _mapped_errors(bucket, key):
            self.client.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata=dict(metadata or {}),
            )

    def list(self, bucket: str, prefix: str) -> Iterator[str]:
        """Every key under a prefix, in S3's (lexicographic) order."""
        paginator = self.client.get_paginator("list_objects_v2")
        with _mapped_errors(bucket, prefix):
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def ensure_bucket(self, bucket: str) -> None:
        """Create a bucket unless it exists (local stack and tests)."""
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError:
            with _mapped_errors(bucket, ""):
                self.client.create_bucket(Bucket=bucket)


def text_lines(read: Callable[[int], bytes], *, max_bytes: int, name: str) -> Iterator[str]:
    """Lines (as str.splitlines cuts them) of UTF-8 bytes from read(n); stops past max_bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pending: list[str] = []  # the partial last line, in pieces: joined once, when its end arrives
    total = 0
    while chunk := read(min(CHUNK_BYTES, max_bytes + 1 - total)):
        total += len(chunk)
        if total > max_bytes:
            raise InputTooLarge(f"{name} is larger than {max_bytes} bytes")
        text = _decoded(decoder, chunk, name)
        if text.splitlines() == [text]:  # mid-line: kept in pieces, not rescanned per chunk
            pending.append(text)
            continue
        complete, tail = _split("".join(pending) + text)
        pending = [tail]
        yield from complete
    complete, tail = _split("".join(pending) + _decoded(decoder, b"", name, final=True))
    yield from complete
    if tail:
        yield tail.splitlines()[0]


def _split(text: str) -> tuple[list[str], str]:
    """Complete lines without their ends, and the partial last one (maybe "")."""
    parts = text.splitlines(keepends=True)
    # A last part without a line end is partial; so is one ending in "\r", whose "\n" may follow.
    last = parts[-1] if parts else ""
    tail = parts.pop() if last.endswith("\r") or last.splitlines() == [last] else ""
    return [part.splitlines()[0] for part in parts], tail


def _decoded(
    decoder: codecs.IncrementalDecoder, chunk: bytes, name: str, final: bool = False
) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError as error:
        raise InvalidJob(f"{name} is not UTF-8 text") from error


def _client(settings: Settings) -> Any:
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.s3_max_attempts},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=config,
    )


@contextmanager
def _mapped_errors(bucket: str, key: str) -> Iterator[None]:
    """Turn boto errors into InputMissing (permanent) or StorageUnavailable (transient)."""
    where = f"s3://{bucket}/{key}"
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _INVALID:
            raise InvalidJob(f"{where}: S3 refuses the request ({code})") from error
        if code in _NOT_FOUND:
            raise InputMissing(f"{where} not found ({code})") from error
        if code in _FORBIDDEN:
            raise InputMissing(f"{where} not readable ({code})") from error
        raise StorageUnavailable(f"{where}: S3 error {code}") from error
    except ParamValidationError as error:  # botocore's own check of names: retrying cannot help
        raise InvalidJob(f"{where}: {error}") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"{where}: {error}") from error
