"""The job contract: what one Celery message carries, versioned, JSON only, S3 keys never bytes.

A message carries only what differs per image: ``JobMessage.encode()``, a JSON list of
``SCHEMA_VERSION``, the batch and image ids and the input's bucket and key. What every
image of a batch shares (the output and the render parameters, ``BatchSpec``) is on the batch
record, written once when the batch is made; a worker reads it once per batch and caches it
(``workers.tasks``). The two together make the ``Job`` the pipeline runs. A worker that receives a
schema it does not know fails the image (permanently) instead of guessing; messages of schema 2
(the previous release, which carried the whole job) are still read, so an upgrade does not fail
what is queued. The render parameters (``BlurParams``) are declared in ``infra.params``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from infra.errors import InvalidJob
from infra.params import EXTENSIONS, BlurParams
from infra.storage import S3Uri
from infra.tenants import DEFAULT_TENANT, split

__all__ = [
    "BATCH_ID",
    "DEFAULT_TENANT",
    "QUEUES",
    "SCHEMA_VERSION",
    "BatchSpec",
    "BlurParams",
    "Job",
    "JobMessage",
    "check_batch_id",
    "depth_key",
    "matte_key",
    "normalise_prefix",
    "output_key",
]

SCHEMA_VERSION = 3
"""Bumped whenever a field is added, removed or changes meaning."""
_FULL_JOB_SCHEMA = 2
"""The previous schema: the whole job in each message. Its per-image fields are still read."""
MESSAGE_FIELDS = ("schema", "batch_id", "image_id", "input_bucket", "input_key")
"""A message's values, in order."""

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
    """One image to blur, as the pipeline runs it: where it is, where its result goes, and how.

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


@dataclass(frozen=True)
class BatchSpec:
    """What every job of a batch shares: kept on the batch record, read once per batch."""

    output_bucket: str
    output_prefix: str
    params: BlurParams

    @classmethod
    def of(cls, output: str, params: dict[str, Any]) -> BatchSpec:
        """From a batch record's output URI and parameters; InvalidJob when they are not valid."""
        where = S3Uri.parse(output)
        return cls(where.bucket, normalise_prefix(where.key), BlurParams.from_dict(params))


@dataclass(frozen=True)
class JobMessage:
    """What one Celery message carries: the image, nothing its batch already says.

    Encoded as a JSON list in the order of ``MESSAGE_FIELDS`` (schema first): a message is kept
    in Redis for every queued image, and field names would be a tenth of its bytes.
    """

    batch_id: str
    image_id: str
    input_bucket: str
    input_key: str
    schema: int = SCHEMA_VERSION

    def encode(self) -> list[Any]:
        """The JSON-ready message body, the values of ``MESSAGE_FIELDS`` in order."""
        return [self.schema, self.batch_id, self.image_id, self.input_bucket, self.input_key]

    @classmethod
    def decode(cls, message: Any) -> JobMessage:
        """Parse a message body; InvalidJob for anything that is not a valid job message."""
        body: dict[str, Any]
        if isinstance(message, dict) and message.get("schema") == _FULL_JOB_SCHEMA:
            body = {name: message.get(name) for name in MESSAGE_FIELDS[1:]}  # the rest: its batch's
        elif isinstance(message, list) and message[:1] == [SCHEMA_VERSION]:
            if len(message) != len(MESSAGE_FIELDS):
                raise InvalidJob(f"job message must hold {len(MESSAGE_FIELDS)} values")
            body = dict(zip(MESSAGE_FIELDS, message, strict=True))
        else:
            raise InvalidJob(f"unsupported job schema {_schema(message)!r}"[:200])
        for name in MESSAGE_FIELDS[1:]:
            if not isinstance(body[name], str) or not body[name]:
                raise InvalidJob(f"job field {name} must be a non-empty string")
        return cls(**body)

    @staticmethod
    def names(message: Any) -> tuple[str, str] | None:
        """The batch and image ids a message names, valid or not (None when it names none)."""
        if isinstance(message, dict):
            ids = (message.get("batch_id"), message.get("image_id"))
        else:
            ids = tuple(message[1:3]) if isinstance(message, list) else ()
        if len(ids) == 2 and all(isinstance(one, str) and one for one in ids):
            return str(ids[0]), str(ids[1])
        return None

    def job(self, batch: BatchSpec) -> Job:
        """The whole job: this image with what its batch shares; the tenant from the batch id."""
        return Job(
            batch_id=self.batch_id,
            image_id=self.image_id,
            input_bucket=self.input_bucket,
            input_key=self.input_key,
            output_bucket=batch.output_bucket,
            output_prefix=batch.output_prefix,
            params=batch.params,
            tenant=split(self.batch_id)[0],
        )


def _schema(message: Any) -> Any:
    """The schema a message says it has, whichever shape it has."""
    if isinstance(message, dict):
        return message.get("schema")
    return message[0] if isinstance(message, list) and message else message


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
