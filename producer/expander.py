"""Expanding a prefix or manifest batch in the background: the ``blurq.expand_batch`` task.

A submission of a prefix or a manifest records its batch at once, ``expanding`` with no images
(``begin``), and either hands it to an expander (``blurq expander``, a Celery worker on its own
small ``expand`` queue, never behind bulk work: the HTTP API answers 202 at once) or expands it
in the caller (the Python API and ``blurq submit``). An ``Expansion`` streams the listing or the
manifest twice, a chunk of ``EXPAND_CHUNK`` at a time, so its memory stays flat at any size:

1. it counts the inputs, checking each against the tenant's prefixes and the batch against the
   images-per-batch cap and the outstanding-images quota; any refusal fails the batch as a whole
   with the reason, and nothing has been sent;
2. it lists them again, writing a chunk's image records and sending their messages before it
   reads the next, so the first images render while the rest is still being listed; it stops at
   the count of the first pass (inputs added meanwhile wait for another batch), and checks each
   input again (a manifest rewritten meanwhile).

The batch's total is known when expansion ends. A batch cancelled while it is listed stops
being listed: it holds the images found by then. Its expander holds a lease that every chunk
renews; an expansion that stops (its process died) is sent to an expander again by the
maintenance sweep and goes on from the records written and the messages sent. An S3 or Redis
outage retries the task with backoff; anything permanent (a listing that vanished, a forbidden
line) fails the batch whole, its queued images cancelled.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from functools import cache
from itertools import islice
from typing import TYPE_CHECKING

from celery import Task

from infra.celery_app import EXPAND_QUEUE, EXPAND_TASK, app
from infra.errors import InvalidJob, PermanentError, TransientError
from infra.jobs import BlurParams, JobMessage
from infra.publish import still_queued
from infra.settings import get_settings
from infra.status import BatchStatus
from infra.status.expansion import Expanding
from infra.storage import S3Uri
from infra.tenants import Tenant, split
from producer import inputs

if TYPE_CHECKING:
    from producer.client import Client

log = logging.getLogger(__name__)

EXPAND_CHUNK = 1_000
"""Inputs read, recorded and sent per step: what an expander holds in memory."""
INTERACTIVE_MAX = 8
"""Batches up to this many images go to the interactive queue; larger ones may not use it."""


class LeaseLost(Exception):
    """Raised when another expander has taken the batch over: this one stops."""


class Cancelled(Exception):
    """Raised when the batch was cancelled while it was listed: its listing stops there."""


def choose_queue(asked: str | None, count: int) -> str:
    """The batch's queue: interactive only for batches within INTERACTIVE_MAX images."""
    if asked == "interactive" and count > INTERACTIVE_MAX:
        raise InvalidJob(f"the interactive queue takes batches of up to {INTERACTIVE_MAX} images")
    return asked or ("interactive" if count <= INTERACTIVE_MAX else "bulk")


def begin(client: Client, batch_id: str, meta: dict[str, str], digest: str, inline: bool) -> bool:
    """Record the batch, expanding, and expand it here (inline) or in an expander; False when it
    existed already (then an inline caller helps a stalled expansion along). Inline, a batch that
    fails whole raises its reason (InvalidJob, QuotaExceeded...) after it is recorded failed."""
    created = client.status_store.create_expanding(batch_id, meta, digest=digest)
    if inline:
        expansion = Expansion(client, batch_id)
        expansion.run()
        if expansion.refused is not None:  # the batch failed whole: the caller hears why
            raise expansion.refused
    elif created:
        client.app.send_task(EXPAND_TASK, args=[batch_id], queue=EXPAND_QUEUE)
    return created


class Expansion:
    """One expander's run at one batch, under its lease (``token``)."""

    def __init__(self, client: Client, batch_id: str, token: str | None = None) -> None:
        self.client, self.store, self.batch_id = client, client.status_store, batch_id
        self.token = token or uuid.uuid4().hex
        self.refused: PermanentError | None = None  # why the batch failed whole, if it did

    def run(self) -> str:
        """Expand the batch: ``expanded``, ``failed: <reason>``, or why this run did nothing."""
        if self.store.claim_expansion(self.batch_id, self.token) == "lost":
            return "not expanding, or another expander has it"
        batch, state = self.store.batch(self.batch_id), self.store.expanding(self.batch_id)
        if batch is None or state is None:
            return "not expanding"
        try:
            tenant = self.client.tenant(split(self.batch_id)[0])
            self._record_and_send(batch, self._count(batch, state, tenant), tenant)
        except LeaseLost:
            return "another expander took it over"
        except Cancelled:  # what was found is the batch; the rest is never listed
            self.store.end_expansion(self.batch_id, self.token)
            return "cancelled"
        except PermanentError as error:
            log.warning("batch %s failed while expanding: %s", self.batch_id, error)
            self.refused = error
            self.store.end_expansion(self.batch_id, self.token, error=str(error))
            return f"failed: {error}"
        self.store.end_expansion(self.batch_id, self.token)
        return "expanded"

    def _inputs(self, batch: BatchStatus, state: Expanding, tenant: Tenant) -> Iterator[S3Uri]:
        """The batch's inputs as the listing or manifest yields them, each one confined."""
        output, params = S3Uri.parse(batch.output), BlurParams.from_dict(batch.params)
        found = inputs.stream(
            self.client.storage,
            **{state.kind: state.source},
            exclude=output,
            cap=tenant.limits.images_per_batch,
        )
        for chunk in _chunks(found):
            inputs.confine_found(tenant, chunk, params.depth_suffix, output, params.matte_suffix)
            self._renew()
            yield from chunk

    def _renew(self) -> None:
        lease = self.store.claim_expansion(self.batch_id, self.token)
        if lease == "lost":
            raise LeaseLost
        if lease == "cancelled":
            raise Cancelled

    def _count(self, batch: BatchStatus, state: Expanding, tenant: Tenant) -> Expanding:
        """The first pass: the inputs counted and reserved, and the queue chosen (once: a resumed
        run finds them); where the expansion stands then."""
        if state.counted is not None:
            return state
        count = sum(1 for _ in self._inputs(batch, state, tenant))
        if not count:
            raise InvalidJob("the batch has no inputs")
        queue = choose_queue(state.queue or None, count)
        limit = tenant.limits.outstanding_images
        reserved = self.store.reserve_expansion(
            self.batch_id, self.token, count, limit=limit, queue=queue
        )
        counted = self.store.expanding(self.batch_id)
        if not reserved or counted is None:
            raise LeaseLost
        return counted

    def _record_and_send(self, batch: BatchStatus, state: Expanding, tenant: Tenant) -> None:
        """The second pass: records and messages, a chunk at a time, from where it got to."""
        assert state.counted is not None
        publish = self.client.publisher.publish
        # Records written before a stop whose messages may not have gone out: still queued ones.
        publish(state.queue, still_queued(self.store, self.batch_id, state.sent, state.total))
        position = state.total
        rest = islice(self._inputs(batch, state, tenant), state.total, state.counted)
        for chunk in _chunks(rest):
            pairs = [(f"{position + n:06d}", str(uri)) for n, uri in enumerate(chunk)]
            if not self.store.add_expanded(self.batch_id, self.token, pairs):
                raise LeaseLost
            messages = [
                JobMessage(self.batch_id, image_id, uri.bucket, uri.key)
                for (image_id, _), uri in zip(pairs, chunk, strict=True)
            ]
            publish(state.queue, messages)
            position += len(chunk)
            self.store.still_sending(self.batch_id, position)


def _chunks(found: Iterator[S3Uri]) -> Iterator[list[S3Uri]]:
    while chunk := list(islice(found, EXPAND_CHUNK)):
        yield chunk


@cache
def _client() -> Client:
    # One per expander process: its Redis pools, S3 client and publisher are shared by tasks.
    from producer.client import Client

    return Client(get_settings())


@app.task(name=EXPAND_TASK, bind=True, max_retries=None)  # type: ignore[untyped-decorator]
def expand_batch(self: Task, batch_id: str) -> str:
    """Expand a prefix or manifest batch; its outcome in words. Retried while S3 or Redis is out."""
    try:
        # The task's id is the lease's token, so that its own retries keep the lease.
        return Expansion(_client(), batch_id, token=self.request.id).run()
    except TransientError as error:
        log.warning("expansion of %s waits for S3 or Redis: %s", batch_id, error)
        raise self.retry(countdown=min(60, 2 ** min(self.request.retries, 6)), exc=error) from error
