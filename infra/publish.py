"""Publishing a batch's job messages at Redis speed: Celery messages pushed a chunk at a time.

``Celery.send_task`` costs about half a millisecond a message (a task-sent event, a repr of the
arguments, a connection checkout per put), so a 10,000-image batch took seconds. ``Publisher``
writes the same messages the way kombu's Redis transport stores them, one ``LPUSH`` per chunk of
``PUBLISH_CHUNK``: the workers, ``celery inspect`` and Flower see ordinary Celery tasks.

A message in a queue's Redis list is kombu's JSON envelope around Celery's protocol 2 body
``[args, kwargs, embed]``::

    body          the body as JSON text (no body_encoding: kombu would base64 it, a third more)
    content-type  application/json
    headers       lang "py", task BLUR_TASK, id "<batch id>:<image id>" (Flower, the logs and
                  celery inspect name the image; a retry keeps the id, as Celery's own retries do)
    properties    delivery_tag: 16 random hex digits (kombu's bookkeeping of unacknowledged
                  messages keys on it, so it must differ between messages in flight);
                  delivery_info: exchange "" and the queue as routing key (where a message that
                  comes back is restored to)

The headers protocol 2 makes optional (eta, expires, retries, time limits, ``argsrepr``...) are left
out: a worker reads each with its default. No ``argsrepr`` either: it would repeat the body.

Flower sees these tasks through the workers' task-received events, not task-sent events: a sent
event per message would double a submission's Redis traffic, and Flower would hold a pending
entry for each of a 100,000-image backlog it can do nothing about; the backlog is the queue's
length, which Flower's broker page and ``/metrics`` (``blurq_queue_depth``) show. A task appears in
Flower when a worker takes it, and from there on as any other task.

Only a Redis broker (``redis://``, ``rediss://``) is written this way; it is the one blurq runs on.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import redis

from infra.celery_app import BLUR_TASK
from infra.jobs import JobMessage
from infra.status import CREATE_CHUNK, ImageState
from infra.status.records import StatusReader
from infra.storage import S3Uri

PUBLISH_CHUNK = 1_000
"""Messages per LPUSH (about 400 KB): few round trips, and no command that blocks Redis long."""
_EMBED: dict[str, Any] = {}
"""Protocol 2's third body part (callbacks, errbacks, chain, chord): none, so empty."""


def task_id(batch_id: str, image_id: str, attempt: str = "") -> str:
    """The Celery task id of an image's message (batch ids hold no ':'); a retry a person asked
    for adds its own ``attempt`` mark, so Flower keeps the failed first task beside the new one."""
    return f"{batch_id}:{image_id}" + (f":{attempt}" if attempt else "")


def image_named(raw: bytes | str, *, unacked: bool = False) -> str | None:
    """``<batch id>:<image id>`` of the image a stored message is for; None for other messages.

    ``raw`` is a queue list's entry, or with ``unacked`` an entry of kombu's ``unacked`` hash
    (``[envelope, exchange, routing key]``). Messages sent by ``send_task`` (retries, and the
    previous release's, whose ids are UUIDs) are recognised by their body.
    """
    try:
        stored = json.loads(raw)
        found = stored[0] if unacked else stored
        headers, body = found["headers"], found["body"]
        if headers.get("task") != BLUR_TASK:
            return None
        if found["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        ids = JobMessage.names(json.loads(body)[0][0])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return None if ids is None else task_id(*ids)


def envelope(message: JobMessage, queue: str, attempt: str = "") -> str:
    """The message as kombu's Redis transport keeps it in the queue's list (``attempt``: as in
    ``task_id``)."""
    body = json.dumps([[message.encode()], {}, _EMBED], separators=(",", ":"))
    return json.dumps(
        {
            "body": body,
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": BLUR_TASK,
                "id": task_id(message.batch_id, message.image_id, attempt),
            },
            "properties": {
                "delivery_tag": secrets.token_hex(8),
                "delivery_info": {"exchange": "", "routing_key": queue},
            },
        },
        separators=(",", ":"),
    )


class Publisher:
    """Pushes job messages onto the broker's queues, a chunk per round trip."""

    def __init__(self, broker: redis.Redis) -> None:
        self.redis = broker

    @classmethod
    def from_url(cls, url: str) -> Publisher:
        """A publisher on the Redis broker at url."""
        return cls(redis.Redis.from_url(url, health_check_interval=30))

    def publish(
        self,
        queue: str,
        messages: Iterable[JobMessage],
        *,
        progress: Callable[[int], None] | None = None,
        attempt: str = "",
    ) -> int:
        """Push the messages in order (the first is taken first); returns how many.

        ``progress`` is called with the count sent so far after each chunk; ``attempt`` marks
        the task ids of a retry (``task_id``).
        """
        sent = 0
        for chunk in _chunks(messages, PUBLISH_CHUNK):
            self.push(queue, [envelope(message, queue, attempt) for message in chunk])
            sent += len(chunk)
            if progress is not None:
                progress(sent)
        return sent

    def push(self, queue: str, values: list[str]) -> None:
        """One chunk of envelopes onto the queue, in one LPUSH."""
        # LPUSH puts each value at the head in turn; kombu takes from the tail: first in, first out.
        self.redis.lpush(queue, *values)


def message_of(batch_id: str, image_id: str, source: str) -> JobMessage:
    """The message of an image from its record's input URI."""
    where = S3Uri.parse(source)
    return JobMessage(batch_id, image_id, where.bucket, where.key)


def still_queued(store: StatusReader, batch_id: str, start: int, stop: int) -> Iterator[JobMessage]:
    """Messages for the batch's images still queued at list positions start to stop - 1: what a
    sender that stopped may not have sent (images a worker took already are left out)."""
    while start < stop:
        count = min(CREATE_CHUNK, stop - start)
        chunk = store.images(batch_id, start=start, count=count)
        for image in chunk:
            if image.state is ImageState.QUEUED:
                yield message_of(batch_id, image.image_id, image.input)
        if len(chunk) < count:
            return
        start += count


def _chunks(messages: Iterable[JobMessage], size: int) -> Iterator[list[JobMessage]]:
    remaining = iter(messages)
    while chunk := list(islice(remaining, size)):
        yield chunk
