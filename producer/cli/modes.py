"""The two ways the batch commands reach blurq, answering in the same shapes.

``Direct`` talks to Redis and the broker as the operator, for one tenant (``--tenant``).
``Remote`` talks to the HTTP API with a key (``--api URL`` or ``BLURQ_API_URL``, the key from
``BLURQ_API_KEY``; never on the command line), acting for the key's tenant. Both give a batch as
a record and its pace (``progress.Shown``) and images as the API's ``Image``, so every command
prints the same lines, and exits with the same codes, in either mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, Protocol

import click

from infra.params import BlurParams
from infra.settings import Settings
from infra.status import BatchStatus, ImageState
from infra.tenants import DEFAULT_TENANT
from producer.cli.options import connection_options
from producer.cli.progress import Pace, Shown, shown
from producer.http.schemas import Batch, Image
from producer.remote import ApiClient


class Mode(Protocol):
    """What the batch commands need from either mode."""

    hint: str
    """Options that repeat this mode in a command printed for the user to run next."""

    def submit(self, *, output: str, params: BlurParams, **request: Any) -> str:
        """Submit a batch; its id."""

    def status(self, batch_id: str) -> Shown:
        """The batch and its pace."""

    def images(self, batch_id: str, state: ImageState | None) -> Iterator[Image]:
        """The batch's images, optionally in one state, in submission order."""

    def cancel(self, batch_id: str) -> Shown:
        """Cancel the batch; the batch after it."""

    def retry(self, batch_id: str) -> Shown:
        """Send the batch's failed images again; the batch after it."""


class Direct:
    """Redis and the broker, as the operator, for one tenant."""

    def __init__(self, settings: Settings, tenant: str) -> None:
        from producer.client import Client  # loads Celery: only in this mode

        self.client = Client(settings)
        self.tenant = tenant
        self.hint = "" if tenant == DEFAULT_TENANT else f" --tenant {tenant}"

    def submit(self, *, output: str, params: BlurParams, **request: Any) -> str:
        tenant = self.client.tenant(self.tenant)
        return self.client.submit(output=output, params=params, tenant=tenant, **request)

    def status(self, batch_id: str) -> Shown:
        return shown(self.client.status(batch_id, tenant=self.tenant))

    def images(self, batch_id: str, state: ImageState | None) -> Iterator[Image]:
        for image in self.client.images(batch_id, state, tenant=self.tenant):
            yield Image.of(image)

    def cancel(self, batch_id: str) -> Shown:
        return shown(self.client.cancel(batch_id, tenant=self.tenant))

    def retry(self, batch_id: str) -> Shown:
        from producer.retry import retry

        retry(self.client, batch_id, tenant=self.client.tenant(self.tenant))
        return self.status(batch_id)


class Remote:
    """The HTTP API, with the key of one tenant."""

    def __init__(self, api: ApiClient, url: str) -> None:
        self.api = api
        self.hint = f" --api {url}"

    def submit(self, *, output: str, params: BlurParams, **request: Any) -> str:
        return self.api.submit(output=output, params=asdict(params), **request).batch_id

    def status(self, batch_id: str) -> Shown:
        return _shown(self.api.batch(batch_id))

    def images(self, batch_id: str, state: ImageState | None) -> Iterator[Image]:
        return self.api.images(batch_id, state=None if state is None else state.value)

    def cancel(self, batch_id: str) -> Shown:
        return _shown(self.api.cancel(batch_id))

    def retry(self, batch_id: str) -> Shown:
        return _shown(self.api.retry(batch_id))


def _shown(batch: Batch) -> Shown:
    """The API's view of a batch as the record and pace the progress bar draws."""
    counts = batch.counts
    record = BatchStatus(
        batch_id=batch.batch_id,
        total=batch.total,
        queued=counts.queued,
        running=counts.running,
        done=counts.done,
        failed=counts.failed,
        cancelled=counts.cancelled,
        cancel_requested=batch.cancelled,
        review=batch.review,
        expanding=batch.state == "expanding",
        error=batch.error,
        created_at=batch.created_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        submitted=True,
        output=batch.output,
        params=batch.params,
        queue=batch.queue,
    )
    return record, Pace(batch.rate, batch.eta_seconds, batch.estimating)


def reach(command: Callable[..., Any]) -> Callable[..., Any]:
    """Shared --api, --tenant, --redis-url and --s3-endpoint: the command gets a Mode first."""

    @click.option(
        "--api",
        "api_url",
        metavar="URL",
        help="Go through the HTTP API at URL with the key in BLURQ_API_KEY "
        "(default: BLURQ_API_URL; unset: Redis directly).",
    )
    @click.option(
        "--tenant",
        default=DEFAULT_TENANT,
        show_default=True,
        help="Direct mode: the tenant whose batch this is (through the API, the key's own).",
    )
    @connection_options
    @functools.wraps(command)
    def wrapper(settings: Settings, api_url: str | None, tenant: str, **options: Any) -> Any:
        return command(_mode(settings, api_url or settings.api_url, tenant), **options)

    return wrapper


def _mode(settings: Settings, url: str, tenant: str) -> Mode:
    if not url:
        return Direct(settings, tenant)
    if tenant != DEFAULT_TENANT:
        raise click.UsageError(
            "--tenant is for direct mode: through the API a key acts for its own"
        )
    if not settings.api_key:
        raise click.UsageError(f"the API at {url} needs a key: set BLURQ_API_KEY")
    return Remote(ApiClient(url, settings.api_key), url)
