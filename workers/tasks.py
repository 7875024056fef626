"""The Celery task: a thin view that decodes the message, runs the pipeline, maps errors.

PermanentError → the image fails with the reason, never retried. TransientError → the image goes
back to queued and the task is retried with exponential backoff and jitter, then fails when
``max_retries`` is spent. Anything unexpected fails the image with the exception's text and is
logged with its traceback; the worker process lives on. When the status store itself cannot be
reached (longer than its client's retries), the message is sent again later, untouched. An image
that is already final, or queued in a cancelled batch, is not run: the status store's ``start``
says so (and, for a cancelled batch, moves it to ``cancelled`` in the same step). A message that
breaks the job contract fails its image (``reject``) when it names one.

Celery tells the same story as the status records, so that Flower agrees with the dashboard: a
task whose image this delivery failed (for good: permanent, out of retries, timed out, poison,
rejected) ends by raising ``ImageFailed`` with the reason, and Celery records it as failed; a
transient error is a Celery retry. The message is acknowledged all the same
(``task_acks_on_failure_or_timeout``): the failure is recorded, so running it again could only
fail it again, and a retry asked for later sends a new message.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from infra.celery_app import BLUR_TASK, app
from infra.errors import InvalidJob, PermanentError, StatusUnavailable, TransientError
from infra.jobs import Job
from infra.models import ModelStore
from infra.settings import Settings, get_settings
from infra.status import StatusStore
from infra.tenants import Tenants, allowances
from workers.matting import Matting
from workers.pipeline import process
from workers.runtime import backoff, status_store, storage

log = logging.getLogger(__name__)


class ImageFailed(PermanentError):
    """Raised to end a task as failed in Celery once its image is recorded failed."""


@cache
def _matting(model: str) -> Matting:
    # Built on first use inside the worker's child process, never in the parent: CUDA does not
    # survive fork, and the prefork pool forks.
    settings = get_settings()
    return Matting(model, ModelStore.from_settings(settings), threads=settings.onnx_threads)


@cache
def _tenants() -> Tenants:
    # Loaded once per worker process: the allowances every job is checked against.
    return allowances(get_settings())


# throws: an expected outcome, logged in a line without a traceback.
@app.task(name=BLUR_TASK, bind=True, max_retries=None, throws=(ImageFailed,))
def blur_image(self: Task, message: dict[str, Any]) -> str:
    """Blur one image described by a job message; returns its final state, or raises
    ImageFailed when this delivery failed it."""
    try:
        return _blur(self, message)
    except StatusUnavailable as error:
        # Redis stayed away longer than its client's own retries. Acknowledging this message
        # would leave the image queued or running forever: send it again later instead.
        log.warning("status store unavailable, image comes back later: %s", error)
        raise self.retry(countdown=backoff(min(self.request.retries, 4)), exc=error) from error


def _blur(task: Task, message: dict[str, Any]) -> str:
    status = status_store()
    try:
        job = Job.decode(message)
    except InvalidJob as error:
        return _failed(_refuse(status, message, error, task.request.hostname), str(error))
    outcome, deliveries = status.start(job.batch_id, job.image_id, worker=task.request.hostname)
    if outcome == "poison":
        raise ImageFailed(f"poison: delivered {deliveries} times without finishing")
    if outcome != "running":
        log.info("image %s/%s not run: %s", job.batch_id, job.image_id, outcome)
        return outcome
    return _run(task, job, status, get_settings())


def _refuse(status: StatusStore, message: Any, error: InvalidJob, worker: str) -> str:
    """Fail the image of a message that breaks the contract, if the message names one.

    Returns the image's state (``failed``, or the final state it already had), or ``invalid``
    when the message names no image.
    """
    log.error("invalid job message: %s", error)
    ids = message if isinstance(message, dict) else {}
    batch_id, image_id = ids.get("batch_id"), ids.get("image_id")
    if not (isinstance(batch_id, str) and isinstance(image_id, str)):
        return "invalid"
    return status.reject(batch_id, image_id, f"invalid job: {error}", worker=worker)


def _failed(state: str, reason: str) -> str:
    """ImageFailed when the image is failed now; else its state (a duplicate found it final)."""
    if state == "failed":
        raise ImageFailed(reason)
    return state


def _run(task: Task, job: Job, status: StatusStore, settings: Settings) -> str:
    ids = (job.batch_id, job.image_id)
    try:
        result = process(
            job,
            storage=storage(),
            status=status,
            matting=_matting,
            settings=settings,
            tenants=_tenants(),
        )
    except PermanentError as error:
        reason = str(error)
    except TransientError as error:
        if task.request.retries < settings.max_retries:
            status.requeue(*ids, f"retrying: {error}", retries=task.request.retries + 1)
            raise task.retry(countdown=backoff(task.request.retries), exc=error) from error
        reason = f"gave up after {task.request.retries} retries: {error}"
    except SoftTimeLimitExceeded:
        reason = f"timed out after {settings.task_soft_time_limit} s"
    except Exception as error:
        log.exception("unexpected failure on %s/%s", *ids)
        reason = f"internal error: {type(error).__name__}: {error}"
    else:
        output = f"s3://{job.output_bucket}/{result.output_key}"
        score = result.confidence
        return status.complete(
            *ids,
            timings=result.timings,
            output=output,
            confidence=None if score is None else score.value,
            review=score is not None and score.review,
        )
    return _failed(status.fail(*ids, reason), reason)
