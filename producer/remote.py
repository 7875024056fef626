"""A typed client of blurq's HTTP API, for programs outside the cluster (``httpx``).

>>> api = ApiClient("https://blurq.example.com", key)   # key: e.g. os.environ["BLURQ_API_KEY"]
>>> batch = api.submit(prefix="s3://shop/products/", output="s3://shop/blurred/",
...                    params={"strength": 40})
>>> api.wait(batch.batch_id).counts.done
>>> failed = [image.error for image in api.images(batch.batch_id, state="failed")]

Answers are the API's own models (``producer.http.schemas``: ``Batch``, ``Image``). What it
adds to plain HTTP calls:

- **Retries.** A 429 or 503 answer, or no answer at all, is tried again up to ``max_attempts``
  times, after the answer's ``Retry-After`` (seconds or an HTTP date) when it gives one, else
  after an exponential backoff with full jitter. A ``Retry-After`` longer than ``max_wait`` is
  not waited for: the error is raised at once with it.
- **Idempotency.** Every submission carries an ``Idempotency-Key`` (the batch id when given,
  else a fresh one), so a retried submission never makes a second batch.
- **Pages.** ``batches()`` and ``images()`` follow ``next_offset`` until the end.
- **Errors.** ``infra.errors.ApiRefused`` (a 4xx the same request would get again: status,
  code, the API's message) or ``ApiUnavailable`` (unreachable, or 429/503 past the retries).
- **Webhooks.** ``verify_webhook`` checks a completion webhook's signature and age
  (``infra.webhooks``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from infra.errors import ApiRefused, ApiUnavailable
from infra.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from producer.http.schemas import Batch, BatchPage, Image, ImagePage

RETRIED = frozenset({429, 503})
"""Answers that a later attempt may get past (quota or rate limit, unavailable)."""
BACKOFF_S = 0.5
"""First backoff step without a Retry-After; doubled per attempt, up to BACKOFF_MAX_S."""
BACKOFF_MAX_S = 30.0


class ApiClient:
    """The HTTP API at base_url, as the holder of one API key."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not key:
            raise ApiRefused("no API key given (BLURQ_API_KEY)", status=0, code="no_key")
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"X-API-Key": key, "User-Agent": "blurq-client"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def submit(
        self,
        *,
        output: str,
        uris: list[str] | None = None,
        prefix: str | None = None,
        manifest: str | None = None,
        params: Mapping[str, Any] | None = None,
        queue: str | None = None,
        batch_id: str | None = None,
        webhook_url: str | None = None,
    ) -> Batch:
        """Submit a batch (exactly one of uris, prefix, manifest); the batch as created or found.

        Without a batch_id, the batch's id is a fresh idempotency key, the same on every retry.
        """
        fields: dict[str, Any] = {
            "output": output,
            "uris": uris,
            "prefix": prefix,
            "manifest": manifest,
            "params": dict(params or {}),
            "queue": queue,
            "webhook_url": webhook_url,
        }
        body = {name: value for name, value in fields.items() if value is not None}
        headers = {"Idempotency-Key": batch_id or uuid.uuid4().hex}
        return Batch.model_validate(self._json("POST", "/v1/batches", json=body, headers=headers))

    def batch(self, batch_id: str) -> Batch:
        """A batch's counts, rate, ETA, parameters and times."""
        return Batch.model_validate(self._json("GET", f"/v1/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> Batch:
        """Cancel a batch: queued images end cancelled, running ones finish."""
        return Batch.model_validate(self._json("POST", f"/v1/batches/{batch_id}/cancel"))

    def retry(self, batch_id: str) -> Batch:
        """Send a batch's failed images again, on an API that has ``POST .../retry``."""
        try:
            return Batch.model_validate(self._json("POST", f"/v1/batches/{batch_id}/retry"))
        except ApiRefused as error:
            if error.code != "not_found":  # a route it has not: FastAPI's plain 404
                raise
            message = f"the API at {self.base_url} cannot retry batches (no POST .../retry)"
            raise ApiRefused(message, status=404, code="not_supported") from error

    def batches(self, *, page_size: int = 100) -> Iterator[Batch]:
        """Every batch of the key's tenant, newest first, a page at a time."""
        offset: int | None = 0
        while offset is not None:
            params = {"offset": offset, "limit": page_size}
            page = BatchPage.model_validate(self._json("GET", "/v1/batches", params=params))
            yield from page.batches
            offset = page.next_offset

    def images(
        self, batch_id: str, *, state: str | None = None, page_size: int = 1000
    ) -> Iterator[Image]:
        """A batch's images (optionally in one state) in submission order, a page at a time."""
        offset: int | None = 0
        while offset is not None:
            params: dict[str, Any] = {"offset": offset, "limit": page_size}
            if state is not None:
                params["state"] = state
            answer = self._json("GET", f"/v1/batches/{batch_id}/images", params=params)
            page = ImagePage.model_validate(answer)
            yield from page.images
            offset = page.next_offset

    def wait(self, batch_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> Batch:
        """Block until every image is final; TimeoutError past timeout."""
        deadline = time.monotonic() + timeout
        while not (current := self.batch(batch_id)).finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not finished after {timeout} s")
            time.sleep(poll)
        return current

    def _json(self, method: str, path: str, **request: Any) -> Any:
        """The JSON of a successful answer; ApiRefused or ApiUnavailable otherwise."""
        answer = self._send(method, path, **request)
        if answer.is_success:
            return answer.json()
        code, message = _error_of(answer)
        if answer.status_code in RETRIED:
            wait = retry_after(answer)
            raise ApiUnavailable(message, status=answer.status_code, code=code, retry_after=wait)
        raise ApiRefused(message, status=answer.status_code, code=code)

    def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        """The answer, after retrying 429, 503 and failed connections (see the module)."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = self.http.request(method, path, **request)
            except httpx.TransportError as error:
                if attempt == self.max_attempts:
                    message = f"cannot reach the API at {self.base_url}: {error}"
                    raise ApiUnavailable(
                        message, status=0, code="unreachable", retry_after=None
                    ) from error
                time.sleep(_backoff(attempt))
                continue
            if answer.status_code not in RETRIED or attempt == self.max_attempts:
                return answer
            wait = retry_after(answer)
            if wait is not None and wait > self.max_wait:
                return answer  # not worth waiting here: the caller learns how long
            time.sleep(_backoff(attempt) if wait is None else wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


def retry_after(answer: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (from seconds or an HTTP date), None without one."""
    value = answer.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _backoff(attempt: int) -> float:
    """Full jitter over an exponential step: attempt 1 waits up to BACKOFF_S."""
    return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (attempt - 1)))


def _error_of(answer: httpx.Response) -> tuple[str, str]:
    """The API's error code and message, or the status and a short text for a foreign answer."""
    try:
        error = answer.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"http_{answer.status_code}", f"HTTP {answer.status_code}: {answer.text[:200]}"


def verify_webhook(secret: str, url: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when a completion webhook's signature is good and recent (``infra.webhooks``).

    secret is the tenant's webhook secret (``blurq tenants webhook-secret NAME``), url the
    webhook URL exactly as submitted, body the raw request body, headers the request's.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    return verify(secret, url, body, timestamp, lower.get(SIGNATURE_HEADER.lower(), ""))
