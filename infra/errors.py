"""The one exception tree of blurq.

Every error a stage raises on purpose is a ``BlurqError``; the Celery task maps the two branches
to the two outcomes an image can have after a failed attempt::

    BlurqError
    ├── PermanentError          never retried: the image is marked failed with the reason
    │   ├── InvalidJob
    │   ├── Forbidden
    │   ├── QuotaExceeded
    │   ├── BatchConflict
    │   ├── InputMissing
    │   ├── InputTooLarge
    │   ├── UnsupportedImage
    │   ├── ModelUnavailable
    │   └── ApiRefused
    └── TransientError          retried with backoff, then failed when retries run out
        ├── StorageUnavailable
        ├── StatusUnavailable
        └── ApiUnavailable

``ApiRefused`` and ``ApiUnavailable`` are what the HTTP API's client (``producer.remote``) raises
for the API's error answers: permanent ones, and those a later attempt may get past.
"""

from __future__ import annotations


class BlurqError(Exception):
    """Raised for every failure blurq recognises; the root of the tree above."""


class PermanentError(BlurqError):
    """Raised when retrying cannot help: the same input would fail again."""


class TransientError(BlurqError):
    """Raised when the failure comes from the environment and a later attempt may succeed."""


class InvalidJob(PermanentError):
    """Raised when a job message or its parameters do not follow the job contract."""


class Forbidden(PermanentError):
    """Raised when a batch would read or write outside its tenant's allowed S3 prefixes."""


class QuotaExceeded(PermanentError):
    """Raised when a tenant is over a quota (outstanding images, submits per minute)."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds after which the same request may pass


class BatchConflict(PermanentError):
    """Raised when a batch id is submitted again with another output or other parameters."""


class InputMissing(PermanentError):
    """Raised when an input object does not exist or cannot be read with our credentials."""


class InputTooLarge(PermanentError):
    """Raised when an input exceeds the configured byte or pixel limit."""


class UnsupportedImage(PermanentError):
    """Raised when input bytes are not an image we can decode (corrupt, truncated, unknown)."""


class ModelUnavailable(PermanentError):
    """Raised when model weights cannot be fetched, or their SHA-256 does not match the pin."""


class StorageUnavailable(TransientError):
    """Raised when S3 throttles us or cannot be reached after the client's own retries."""


class StatusUnavailable(TransientError):
    """Raised when the Redis status store cannot be reached."""


class ApiRefused(PermanentError):
    """Raised when the HTTP API answers with an error that the same request would get again."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, e.g. 404
        self.code = code  # the API's error code, e.g. "batch_not_found"


class ApiUnavailable(TransientError):
    """Raised when the HTTP API cannot be reached, or still answers 429 or 503 after retries."""

    def __init__(self, message: str, *, status: int, code: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status  # 0 when no answer came at all
        self.code = code
        self.retry_after = retry_after  # seconds the API asked to wait, when it said
