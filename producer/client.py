"""The Python API: submit a batch, read its status, wait for it, cancel it.

>>> client = Client()
>>> batch = client.submit(prefix="s3://photos/shoot-42/", output="s3://photos/blurred/",
...                       params=BlurParams(strength=40), batch_id="shoot-42")
>>> client.wait(batch).done

Every call acts for one tenant (``infra.tenants``; default: ``default``, single-tenant mode).
A submission is admitted in this order, before anything is queued: confinement (every input,
the prefix, the manifest, the output, each before any S3 call on it), the submits per minute,
then the batch. A list of URIs is checked whole here (each input's depth map and matte, images
per batch, outstanding images), recorded, and its messages pushed a chunk at a time
(``infra.publish``). A prefix or a manifest is recorded at once, ``expanding``, and listed by
``producer.expander`` (here, or in an expander with ``background``), which applies the same
checks to what it finds before it sends anything.
Batch ids are the tenant's own; Redis and the job messages hold them qualified by the tenant.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial

from celery import Celery

from infra.celery_app import create_app, send_webhook
from infra.errors import InvalidJob
from infra.jobs import QUEUES, BlurParams, JobMessage, check_batch_id
from infra.publish import Publisher
from infra.settings import Settings, get_settings
from infra.status import BatchStatus, ImageState, ImageStatus, StatusStore
from infra.status.records import mapped_errors
from infra.storage import S3Storage, S3Uri, Storage
from infra.tenants import DEFAULT_TENANT, Tenant, Tenants, load, qualify, split
from infra.webhooks import check_url
from producer import expander, inputs, quotas
from producer.idempotency import check_same, request_digest


@dataclass(frozen=True)
class Submission:
    """A submitted batch's id, and whether this submission created it (False: it existed)."""

    batch_id: str  # the tenant's own id
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
        publisher: Publisher | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.storage = storage or S3Storage(self.settings)
        self.app = app or create_app(self.settings)
        self.publisher = publisher or Publisher.from_url(self.settings.broker)
        self.status_store = status or StatusStore.from_url(
            self.settings.redis_url,
            ttl=self.settings.status_ttl,
            max_deliveries=self.settings.max_deliveries,
            # A cancel can be what finishes a batch: its webhook is then sent from here.
            on_complete=partial(send_webhook, self.app),
        )
        self._tenants: Tenants | None = None

    def tenant(self, name: str = DEFAULT_TENANT) -> Tenant:
        """The tenant of that name in the deployment's tenants; InvalidJob when unknown."""
        if self._tenants is None:
            self._tenants = load(self.settings)
        found = self._tenants.get(name)
        if found is None:
            raise InvalidJob(f"no tenant {name!r}")
        return found

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
        tenant: Tenant | None = None,
    ) -> str:
        """Submit one batch; returns its id. Resubmitting a batch id sends nothing twice.

        BatchConflict when the batch id exists for another request (inputs, output, parameters,
        webhook); Forbidden when an input or the output lies outside the tenant's prefixes;
        QuotaExceeded when the tenant is over a quota. With webhook_url, a signed POST announces
        the batch's end (``infra.webhooks``).
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
            tenant=tenant,
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
        tenant: Tenant | None = None,
        background: bool = False,
    ) -> Submission:
        """Like submit, and says whether the batch was created or already existed; with
        background, a prefix or manifest is listed by an expander and this returns at once."""
        tenant = tenant or self.tenant()
        destination = S3Uri.parse(output)
        inputs.confine(tenant, destination, uris, prefix, manifest)  # before any S3 call
        if webhook_url is not None:
            check_url(webhook_url)
        if queue is not None and queue not in QUEUES:
            raise InvalidJob(f"queue must be one of {QUEUES}, got {queue!r}")
        params = params or BlurParams()
        own_id = check_batch_id(batch_id) if batch_id else uuid.uuid4().hex
        qualified = qualify(tenant.name, own_id)
        quotas.count_submit(self.status_store, tenant)
        digest = request_digest(
            output=destination,
            uris=uris,
            prefix=prefix,
            manifest=manifest,
            params=params,
            webhook_url=webhook_url,
        )
        if batch_id:
            existing = check_same(self.status_store.batch(qualified), digest, destination, params)
            if existing is not None and existing.submitted:
                return Submission(own_id, created=False)
        meta = {"params": json.dumps(asdict(params)), "output": str(destination)}
        if webhook_url:
            meta["webhook_url"] = webhook_url
        if uris is None:  # a prefix or a manifest: listed in the background, or here
            source = ("prefix", prefix) if prefix is not None else ("manifest", str(manifest))
            meta |= {"queue": queue or "", source[0]: str(source[1])}
            return Submission(own_id, expander.begin(self, qualified, meta, digest, not background))
        meta["queue"] = queue or ""
        jobs = self._jobs(tenant, qualified, list(uris), meta, destination, params)
        created = self._create(qualified, jobs, meta, (destination, params, digest), tenant)
        return Submission(own_id, created)

    def _jobs(
        self,
        tenant: Tenant,
        batch_id: str,
        uris: list[str],
        meta: dict[str, str],
        output: S3Uri,
        params: BlurParams,
    ) -> list[JobMessage]:
        """The messages of a batch of URIs, checked whole; its queue chosen into meta."""
        sources = inputs.from_uris(uris, cap=tenant.limits.images_per_batch)
        if not sources:
            raise InvalidJob("the batch has no inputs")
        inputs.confine_found(tenant, sources, params.depth_suffix, output, params.matte_suffix)
        meta["queue"] = expander.choose_queue(meta["queue"] or None, len(sources))
        quotas.check_outstanding(self.status_store, tenant, len(sources))
        return [
            JobMessage(batch_id, f"{n:06d}", source.bucket, source.key)
            for n, source in enumerate(sources)
        ]

    def _create(
        self,
        batch_id: str,
        jobs: list[JobMessage],
        meta: dict[str, str],
        request: tuple[S3Uri, BlurParams, str],
        tenant: Tenant,
    ) -> bool:
        """Record the batch and send its messages; False when it existed already.

        ``request`` is the output, the parameters and the request's digest.
        """
        output, params, digest = request
        created = self.status_store.create_batch(
            batch_id,
            ((job.image_id, f"s3://{job.input_bucket}/{job.input_key}") for job in jobs),
            meta,
            digest=digest,
            max_outstanding=tenant.limits.outstanding_images,
        )
        before = 0
        if not created:
            # Another submission of the same id may have created the batch since the check above.
            existing = check_same(self.status_store.batch(batch_id), digest, output, params)
            if existing is None or not self.status_store.claim_sending(batch_id):
                return False  # all sent, or its sender is still at it
            # Its sender stopped half-way: what it had not sent, if still queued.
            before = existing.sent
            jobs = self._still_queued(batch_id, jobs[before:])
        self._send(batch_id, jobs, meta["queue"], before)
        self.status_store.mark_submitted(batch_id)
        return created

    def _still_queued(self, batch_id: str, jobs: list[JobMessage]) -> list[JobMessage]:
        """The jobs whose image is still queued: those a stopped submission may not have sent."""
        tenant, own_id = split(batch_id)
        queued = {i.image_id for i in self.images(own_id, ImageState.QUEUED, tenant=tenant)}
        return [job for job in jobs if job.image_id in queued]

    def _send(self, batch_id: str, jobs: list[JobMessage], queue: str, before: int) -> None:
        """Publish the jobs; ``before``: how many of the batch's first messages were sent."""

        def progress(sent: int) -> None:
            # Keeps the lease (not taken over) and says where a takeover goes on from; after a
            # takeover that skipped images no longer queued, an underestimate: safe.
            self.status_store.still_sending(batch_id, before + sent)

        with mapped_errors():
            self.publisher.publish(queue, jobs, progress=progress)

    def status(self, batch_id: str, *, tenant: str = DEFAULT_TENANT) -> BatchStatus:
        """The tenant's batch; InvalidJob when it has no such batch (or it expired)."""
        found = self.status_store.batch(qualify(tenant, batch_id))
        if found is None:
            raise InvalidJob(f"no batch {batch_id!r} (never submitted, or expired)")
        return found

    def images(
        self, batch_id: str, state: ImageState | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> list[ImageStatus]:
        """Every image record of the batch, optionally only those in one state."""
        found: list[ImageStatus] = []
        start, page, qualified = 0, 1000, qualify(tenant, batch_id)
        while True:
            chunk = self.status_store.images(qualified, start=start, count=page)
            found += [image for image in chunk if state is None or image.state is state]
            if len(chunk) < page:
                return found
            start += page

    def cancel(self, batch_id: str, *, tenant: str = DEFAULT_TENANT) -> BatchStatus:
        """Cancel a batch: queued images end ``cancelled``, running ones finish; the new status."""
        if self.status_store.cancel(qualify(tenant, batch_id)) is None:
            raise InvalidJob(f"no batch {batch_id!r} (never submitted, or expired)")
        return self.status(batch_id, tenant=tenant)

    def wait(
        self,
        batch_id: str,
        *,
        tenant: str = DEFAULT_TENANT,
        timeout: float = 3600.0,
        poll: float = 0.5,
    ) -> BatchStatus:
        """Block until every image is done, failed or cancelled; TimeoutError past timeout."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(batch_id, tenant=tenant)
            if current.finished:
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not finished after {timeout} s")
            time.sleep(poll)
