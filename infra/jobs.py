"""The job contract: what one Celery message carries, versioned, JSON only, S3 keys never bytes.

A message is ``Job.encode()``: a plain dict with ``schema`` = ``SCHEMA_VERSION``. A worker that
receives a schema it does not know fails the image (permanently) instead of guessing.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.errors import InvalidJob

SCHEMA_VERSION = 1
"""Bumped whenever a field is added, removed or changes meaning."""

MATTING_MODELS = ("fusion", "isnet", "u2netp")
OUTPUT_FORMATS = ("jpeg", "png", "webp")
QUEUES = ("interactive", "bulk")

EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
"""File extension of each output format."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DEPTH_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,40}")


@dataclass(frozen=True)
class BlurParams:
    """How to render: identical for every image of a batch."""

    strength: int = 30
    aperture: int | None = None  # None: disc; N >= 3: polygon with N blades
    rotation: float = 0.0  # degrees the polygon is turned, counter-clockwise
    model: str = "fusion"
    format: str = "jpeg"
    quality: int = 92
    depth_suffix: str | None = None  # per-image depth map at <input key stem><suffix>

    def __post_init__(self) -> None:
        if not 1 <= self.strength <= 100:
            raise InvalidJob(f"strength must be 1..100, got {self.strength}")
        if self.aperture is not None and not 3 <= self.aperture <= 12:
            raise InvalidJob(f"aperture must be 'disc' or 3..12 blades, got {self.aperture}")
        if not -360.0 <= self.rotation <= 360.0:
            raise InvalidJob(f"rotation must be -360..360 degrees, got {self.rotation}")
        if self.model not in MATTING_MODELS:
            raise InvalidJob(f"model must be one of {MATTING_MODELS}, got {self.model!r}")
        if self.format not in OUTPUT_FORMATS:
            raise InvalidJob(f"format must be one of {OUTPUT_FORMATS}, got {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise InvalidJob(f"quality must be 1..100, got {self.quality}")
        if self.depth_suffix is not None and not _DEPTH_SUFFIX.fullmatch(self.depth_suffix):
            raise InvalidJob(f"depth suffix must look like '.depth.png', got {self.depth_suffix!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BlurParams:
        """Build from JSON data; unknown fields are an error, not ignored."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidJob(f"unknown parameters: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise InvalidJob(f"bad parameters: {error}") from error

    def fingerprint(self) -> str:
        """A stable text of the parameters, part of the output key's hash."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def parse_aperture(text: str) -> int | None:
    """'disc' is None, a number is that many blades (3..12); InvalidJob for anything else."""
    if text == "disc":
        return None
    if not text.isdigit() or not 3 <= int(text) <= 12:
        raise InvalidJob(f"aperture must be 'disc' or 3..12 blades, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Job:
    """One image to blur: where it is, where its result goes, and how to render it."""

    batch_id: str
    image_id: str
    input_bucket: str
    input_key: str
    output_bucket: str
    output_prefix: str
    params: BlurParams = field(default_factory=BlurParams)
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
        for name in ("batch_id", "image_id", "input_bucket", "input_key", "output_bucket"):
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


def normalise_prefix(prefix: str) -> str:
    """A prefix as ``a/b/`` (no leading slash, no dot parts), or empty for the bucket's root."""
    parts = [part for part in prefix.split("/") if part and part not in (".", "..")]
    return "".join(f"{part}/" for part in parts)
