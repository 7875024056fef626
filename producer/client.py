"""The Python API: submit a batch, read its status, wait for it, cancel it.

>>> client = Client()
>>> batch = client.submit(prefix="s3://photos/shoot-42/", output="s3://photos/blurred/",
...                       params=BlurParams(strength=40), batch_id="shoot-42")
>>> client.wait(batch).done
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial

from celery import Celery

from infra.celery_app import BLUR_TASK, create_app, send_webhook
from infra.errors import BatchConflict, InvalidJob
from infra.jobs import BATCH_ID, QUEUES, BlurParams, Job, normalise_prefix
from infra.settings import Settings, get_settings
from infra.status import BatchStatus, ImageState, ImageStatus, StatusStore
from infra.storage import S3Storage, S3Uri, Storage
from infra.webhooks import check_url
from producer import inputs

INTERACTIVE_MAX = 8
"""Batches up to this many images go to the interactive queue unless a queue is named."""


@dataclass(frozen=True)
class Submission:
    """A submitted batch's id, and whether this submission created it (False: it existed)."""

    batch_id: str
    created: bool


class Client:
    """Submits batches to the workers and reads their progress."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        storage: Storage | None = None,
        status: StatusStore | None = None,
        app: Celery | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.storage = storage or S3Storage(self.settings)
        self.app = app or create_app(self.settings)
        self.status_store = status or StatusStore.from_url(
            self.settings.redis_url,
            ttl=self.settings.status_ttl,
            max_deliveries=self.settings.max_deliveries,
            # A cancel can be what finishes a batch: its webhook is then sent from here.
            on_complete=partial(send_webhook, self.app),
        )

    def submit(
        self,
        *,
        output: str,
        uris: Sequence[str] | None = None,
        prefix: str | None = None,
        manifest: str | None = None,
        params: BlurParams | None = None,
        batch_id: str | None = None,
        queue: str | None = None,
        webhook_url: str | None = None,
    ) -> str:
        """Submit one batch; returns its id. Resubmitting a batch id sends nothing twice.

        BatchConflict when the batch id exists with another output or other parameters.

        With webhook_url, a signed POST announces the batch's end (``infra.webhooks``).
        """
        return self.submit_batch(
            output=output,
            uris=uris,
            prefix=prefix,
            manifest=manifest,
            params=params,
            batch_id=batch_id,
            queue=queue,
            webhook_url=webhook_url,
        ).batch_id

    def submit_batch(
        self,
        *,
        output: str,
        uris: Sequence[str] | None = None,
        prefix: str | None = None,
        manifest: str | None = None,
        params: BlurParams | None = None,
        batch_id: str | None = None,
        queue: str | None = None,
        webhook_url: str | None = None,
    ) -> Submission:
        """Like submit, and says whether the batch was created or already existed."""
        destination = S3Uri.parse(output)
        if webhook_url is not None:
            check_url(webhook_url)
        params = params or BlurParams()
        if batch_id:
            self._check_same(_check_batch_id(batch_id), destination, params)
        sources = self._expand(uris, prefix, manifest, destination)
        if not sources:
            raise InvalidJob("the batch has no inputs")
        batch_id = batch_id or uuid.uuid4().hex
        queue = queue or ("interactive" if len(sources) <= INTERACTIVE_MAX else "bulk")
        if queue not in QUEUES:
            raise InvalidJob(f"queue must be one of {QUEUES}, got {queue!r}")
        jobs = [
            _job(batch_id, f"{n:06d}", source, destination, params)
            for n, source in enumerate(sources)
        ]
        meta = {"params": json.dumps(asdict(params)), "output": str(destination), "queue": queue}
        if webhook_url:
            meta["webhook_url"] = webhook_url
        created = self.status_store.create_batch(
            batch_id,
            ((job.image_id, f"s3://{job.input_bucket}/{job.input_key}") for job in jobs),
            meta,
        )
        if not created:
            # Another submission of the same id may have created the batch since the check above.
            existing = self._check_same(batch_id, destination, params)
            if existing is not None and existing.submitted:
                return Submission(batch_id, created=False)
            if existing is not None:  # a submission that stopped half-way
                jobs = self._still_queued(batch_id, jobs)
        self._send(jobs, queue)
        self.status_store.mark_submitted(batch_id)
        return Submission(batch_id, created=created)

    def _check_same(self, batch_id: str, output: S3Uri, params: BlurParams) -> BatchStatus | None:
        """The existing batch of this id (or None); BatchConflict if it was asked differently."""
        existing = self.status_store.batch(batch_id)
        if existing is not None and (
            existing.output != str(output) or BlurParams.from_dict(existing.params) != params
        ):
            raise BatchConflict(
                f"batch {batch_id!r} exists with another output or other parameters"
            )
        return existing

    def _still_queued(self, batch_id: str, jobs: list[Job]) -> list[Job]:
        """The jobs whose image is still queued: those a stopped submission may not have sent."""
        queued = {image.image_id for image in self.images(batch_id, ImageState.QUEUED)}
        return [job for job in jobs if job.image_id in queued]

    def _expand(
        self, uris: Sequence[str] | None, prefix: str | None, manifest: str | None, output: S3Uri
    ) -> list[S3Uri]:
        given = [value is not None for value in (uris, prefix, manifest)]
        if sum(given) != 1:
            raise InvalidJob("give exactly one of uris, prefix or manifest")
        if uris is not None:
            return inputs.from_uris(list(uris))
        if prefix is not None:
            return inputs.from_prefix(self.storage, prefix, exclude=output)
        assert manifest is not None
        return inputs.from_manifest(self.storage, manifest)

    def _send(self, jobs: list[Job], queue: str) -> None:
        with self.app.producer_or_acquire() as producer:
            for job in jobs:
                self.app.send_task(BLUR_TASK, args=[job.encode()], queue=queue, producer=producer)

    def status(self, batch_id: str) -> BatchStatus:
        """The batch's counters and times; InvalidJob when no such batch exists (or expired)."""
        found = self.status_store.batch(batch_id)
        if found is None:
            raise InvalidJob(f"no batch {batch_id!r} (never submitted, or expired)")
        return found

    def images(self, batch_id: str, state: ImageState | None = None) -> list[ImageStatus]:
        """Every image record of the batch, optionally only those in one state."""
        found: list[ImageStatus] = []
        start, page = 0, 1000
        while True:
            chunk = self.status_store.images(batch_id, start=start, count=page)
            found += [image for image in chunk if state is None or image.state is state]
            if len(chunk) < page:
                return found
            start += page

    def cancel(self, batch_id: str) -> BatchStatus:
        """Cancel a batch: queued images end ``cancelled``, running ones finish; the new status."""
        if self.status_store.cancel(batch_id) is None:
            raise InvalidJob(f"no batch {batch_id!r} (never submitted, or expired)")
        return self.status(batch_id)

    def wait(self, batch_id: str, *, timeout: float = 3600.0, poll: float = 0.5) -> BatchStatus:
        """Block until every image is done, failed or cancelled; TimeoutError past timeout."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(batch_id)
            if current.finished:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not finished after {timeout} s")
            time.sleep(poll)


def _check_batch_id(batch_id: str) -> str:
    if not re.match(BATCH_ID, batch_id):
        raise InvalidJob("batch id must be 1-64 of letters, digits, '.', '_', '-'")
    return batch_id


def _job(batch_id: str, image_id: str, source: S3Uri, output: S3Uri, params: BlurParams) -> Job:
    return Job(
        batch_id=batch_id,
        image_id=image_id,
        input_bucket=source.bucket,
        input_key=source.key,
        output_bucket=output.bucket,
        output_prefix=normalise_prefix(output.key),
        params=params,
    )
