"""The job contract: what one Celery message carries, versioned, JSON only, S3 keys never bytes.

A message is ``Job.encode()``: a plain dict with ``schema`` = ``SCHEMA_VERSION``. A worker that
receives a schema it does not know fails the image (permanently) instead of guessing. The render
parameters a job carries (``BlurParams``) are declared in ``infra.params``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.errors import InvalidJob
from infra.params import EXTENSIONS, BlurParams
from infra.tenants import DEFAULT_TENANT

__all__ = [
    "BATCH_ID",
    "DEFAULT_TENANT",
    "QUEUES",
    "SCHEMA_VERSION",
    "BlurParams",
    "Job",
    "check_batch_id",
    "depth_key",
    "matte_key",
    "normalise_prefix",
    "output_key",
]

SCHEMA_VERSION = 2
"""Bumped whenever a field is added, removed or changes meaning."""

QUEUES = ("interactive", "bulk")

BATCH_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A batch id (the API's idempotency key): 1-64 of letters, digits, '.', '_', '-'."""


def check_batch_id(batch_id: str) -> str:
    """The batch id when it matches BATCH_ID; InvalidJob otherwise."""
    if not re.match(BATCH_ID, batch_id):
        raise InvalidJob("batch id must be 1-64 of letters, digits, '.', '_', '-'")
    return batch_id


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Job:
    """One image to blur: where it is, where its result goes, and how to render it.

    ``batch_id`` is qualified by the tenant (``infra.tenants.qualify``); the worker checks the
    locations against that tenant's allowances again before any S3 call.
    """

    batch_id: str
    image_id: str
    input_bucket: str
    input_key: str
    output_bucket: str
    output_prefix: str
    params: BlurParams = field(default_factory=BlurParams)
    tenant: str = DEFAULT_TENANT
    schema: int = SCHEMA_VERSION

    def encode(self) -> dict[str, Any]:
        """The JSON-ready message body."""
        return asdict(self)

    @classmethod
    def decode(cls, message: Any) -> Job:
        """Parse a message body; raise InvalidJob for anything that is not a valid v1 job."""
        if not isinstance(message, dict):
            raise InvalidJob(f"job message must be an object, got {type(message).__name__}")
        if message.get("schema") != SCHEMA_VERSION:
            raise InvalidJob(f"unsupported job schema {message.get('schema')!r}")
        body = dict(message)
        params = body.pop("params", {})
        if not isinstance(params, dict):
            raise InvalidJob("params must be an object")
        try:
            job = cls(params=BlurParams.from_dict(params), **body)
        except TypeError as error:
            raise InvalidJob(f"bad job message: {error}") from error
        fields = ("batch_id", "image_id", "input_bucket", "input_key", "output_bucket", "tenant")
        for name in fields:
            if not isinstance(getattr(job, name), str) or not getattr(job, name):
                raise InvalidJob(f"job field {name} must be a non-empty string")
        return job


def output_key(job: Job, *, etag: str, model_version: str) -> str:
    """The deterministic output key of a job, always inside the batch's output prefix.

    The name keeps the input's path (sanitised, ``..`` and empty parts dropped) so results are
    easy to find, and adds a hash of input key, input ETag, parameters and model version: the same
    input rendered the same way always lands on the same object; anything else never collides.
    """
    digest = hashlib.sha256(
        "\n".join(
            [job.input_bucket, job.input_key, etag, job.params.fingerprint(), model_version]
        ).encode()
    ).hexdigest()[:16]
    stem = posixpath.splitext(job.input_key)[0]
    parts = [_UNSAFE.sub("_", part) for part in stem.split("/")]
    safe = [part for part in parts if part.strip(".") and part not in (".", "..")] or ["image"]
    name = f"{'/'.join(safe)}.{digest}.{EXTENSIONS[job.params.format]}"
    return f"{normalise_prefix(job.output_prefix)}{name}"


def matte_key(output: str) -> str:
    """Where the matte of an output goes (``save_matte``): beside it, ``<output stem>.matte.png``.

    The worker writes it there; the dashboard finds it there for its viewer's overlay.
    """
    return f"{posixpath.splitext(output)[0]}.matte.png"


def depth_key(input_key: str, suffix: str) -> str:
    """The key of an input's depth map: the input key without its extension, plus suffix."""
    stem, dot, extension = input_key.rpartition(".")
    base = stem if dot and "/" not in extension else input_key
    return f"{base}{suffix}"


def normalise_prefix(prefix: str) -> str:
    """A prefix as ``a/b/`` (no leading slash, no dot parts), or empty for the bucket's root."""
    parts = [part for part in prefix.split("/") if part and part not in (".", "..")]
    return "".join(f"{part}/" for part in parts)
