"""The Celery task: a thin view that decodes the message, runs the pipeline, maps errors.

A message names one image (``infra.jobs.JobMessage``); what its batch's images share (output,
parameters) is read from the batch record once per batch and cached per worker process, keyed
by the batch's creation time that ``start`` returns, so a batch id that expired and was made again
is read again. Cancellation, deliveries and confinement are still decided per image: ``start``
reads the batch's cancel flag, and the pipeline checks every job against its tenant.

PermanentError → the image fails with the reason, never retried. TransientError → the image goes
back to queued and the task is retried with exponential backoff and jitter, then fails when
``max_retries`` is spent. Anything unexpected fails the image with the exception's text and is
logged with its traceback; the worker process lives on, except after a GPU failure (out of
device memory, a lost device: ``workers.gpu.failures``), which puts the image back to queued and
ends the process before the message is acknowledged, so that Celery puts the message back on
its queue and replaces the process. Each image's done line in the log carries, on the GPU path,
the process's GPU memory. When the status store itself cannot be
reached (longer than its client's retries), the message is sent again later, untouched. A
message is never dropped while its image is not final: when a retry cannot be published (the
broker is away too), Celery would reject the message for good; it is put back on its queue
instead, or, when even that does not reach the broker, it stays unacknowledged and comes back
after the visibility timeout. An image
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
import os
from functools import cache, lru_cache
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded

from infra.celery_app import BLUR_TASK, app
from infra.errors import InvalidJob, PermanentError, StatusUnavailable, TransientError
from infra.jobs import BatchSpec, Job, JobMessage
from infra.models import ModelStore
from infra.settings import Settings, get_settings
from infra.status import StatusStore
from infra.tenants import Tenants, allowances
from workers.gpu.backend import Backend, choose
from workers.gpu.failures import GPU_FAILURE_EXIT, is_gpu_failure
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
def blur_image(self: Task, message: Any) -> str:
    """Blur one image described by a job message; returns its final state, or raises
    ImageFailed when this delivery failed it."""
    try:
        return _blur(self, message)
    except StatusUnavailable as error:
        # Redis stayed away longer than its client's own retries. Acknowledging this message
        # would leave the image queued or running forever: send it again later instead.
        log.warning("status store unavailable, image comes back later: %s", error)
        _retry(self, backoff(min(self.request.retries, 4)), error)


def _retry(task: Task, countdown: float, error: Exception) -> NoReturn:
    """Send the message again after countdown; back on its queue if that cannot be published."""
    try:
        raise task.retry(countdown=countdown, exc=error)
    except Reject as refused:  # Celery's answer to a retry it could not publish: requeue=False
        log.warning("retry not published, message goes back to its queue: %s", refused.reason)
        raise Reject(refused.reason, requeue=True) from error


@lru_cache(maxsize=64)
def _batch_spec(batch_id: str, created: float) -> BatchSpec:
    # Once per batch (and per process): what its images share. created tells a batch id made
    # again after it expired from the batch that was read.
    found = status_store().batch(batch_id)
    if found is None or found.created_at != created:
        raise InvalidJob(f"batch {batch_id!r} has no record (expired or not made whole)")
    return BatchSpec.of(found.output, found.params)


def _blur(task: Task, message: Any) -> str:
    status = status_store()
    try:
        image = JobMessage.decode(message)
    except InvalidJob as error:
        return _failed(_refuse(status, message, error, task.request.hostname), str(error))
    ids = (image.batch_id, image.image_id)
    started = status.start(*ids, worker=task.request.hostname)
    if started.outcome == "poison":
        raise ImageFailed(f"poison: delivered {started.deliveries} times without finishing")
    if started.outcome != "running":
        log.info("image %s/%s not run: %s", *ids, started.outcome)
        return started.outcome
    try:
        job = image.job(_batch_spec(image.batch_id, started.batch_created))
    except InvalidJob as error:
        reason = f"invalid job: {error}"
        return _failed(status.fail(*ids, reason), reason)
    return _run(task, job, status, get_settings())


def _refuse(status: StatusStore, message: Any, error: InvalidJob, worker: str) -> str:
    """Fail the image of a message that breaks the contract, if the message names one.

    Returns the image's state (``failed``, or the final state it already had), or ``invalid``
    when the message names no image.
    """
    log.error("invalid job message: %s", error)
    ids = JobMessage.names(message)
    if ids is None:
        return "invalid"
    return status.reject(*ids, f"invalid job: {error}", worker=worker)


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
            _retry(task, backoff(task.request.retries), error)
        reason = f"gave up after {task.request.retries} retries: {error}"
    except SoftTimeLimitExceeded:
        reason = f"timed out after {settings.task_soft_time_limit} s"
    except Exception as error:
        if is_gpu_failure(error):
            _end_process(status, job, error, task.request.retries)
        log.exception("unexpected failure on %s/%s", *ids)
        reason = f"internal error: {type(error).__name__}: {error}"
    else:
        output = f"s3://{job.output_bucket}/{result.output_key}"
        score = result.confidence
        state = status.complete(
            *ids,
            timings=result.timings,
            output=output,
            confidence=None if score is None else score.value,
            review=score is not None and score.review,
        )
        seconds = sum(result.timings.values())
        where = _renderer(choose(settings.renderer))
        log.info("image %s/%s %s in %.2f s%s", *ids, state, seconds, where)
        return state
    return _failed(status.fail(*ids, reason), reason)


def _renderer(backend: Backend | None) -> str:
    """The done line's note of the GPU path's backend and this process's GPU memory; nothing on
    the OpenCV path.

    CuPy's pool keeps the blocks it took (it gives them back only when an allocation would
    fail), so what it holds is its peak. onnxruntime's arenas cannot be read from Python: the
    device's memory in use, every process on it together, includes them.
    """
    if backend is None:
        return ""
    if not backend.on_gpu:
        return f"; renderer {backend.name}"
    free, total = backend.xp.cuda.runtime.memGetInfo()
    return (
        f"; renderer {backend.name}, GPU memory: "
        f"CuPy pool {backend.memory_bytes() / 2**20:.0f} MiB in this process, "
        f"device {(total - free) / 2**20:.0f} of {total / 2**20:.0f} MiB in use"
    )


def _end_process(status: StatusStore, job: Job, error: Exception, retries: int) -> NoReturn:
    """Put the image back to queued and end this process before its message is acknowledged.

    After a GPU failure the process's CUDA context cannot be trusted with the next image. Celery
    (``task_reject_on_worker_lost``) puts the unacknowledged message back on its queue, the pool
    starts a fresh process, and the image's delivery count bounds one that fails every time.
    """
    ids = (job.batch_id, job.image_id)
    reason = f"GPU failure: {type(error).__name__}: {error}"
    log.critical("%s/%s: %s; process %d exits", *ids, reason, os.getpid(), exc_info=error)
    try:
        status.requeue(*ids, reason, retries=retries)
    except Exception:  # the store away too: the redelivery finds the image running, as after a kill
        log.exception("image %s/%s not put back to queued", *ids)
    finally:
        logging.shutdown()  # os._exit skips the handlers' own flushing
        os._exit(GPU_FAILURE_EXIT)
