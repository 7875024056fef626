"""The maintenance sweep on real Redis: each repair, and what it leaves alone (no workers here;
tests/integration/test_sweeper_faults.py runs it in worker processes)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Reject

from infra.celery_app import create_app
from infra.publish import Publisher, envelope, image_named, message_of
from infra.settings import Settings
from infra.status import (
    CREATING_KEY,
    EXPANDING_KEY,
    RUNNING_KEY,
    SENDING_KEY,
    WEBHOOKS_DUE_KEY,
    StatusStore,
    batch_key,
)
from infra.sweeper import Sweeper

pytestmark = pytest.mark.services

META = {"output": "s3://out/", "params": "{}", "queue": "bulk", "webhook_url": "https://x.test/"}


@pytest.fixture
def sweeper(settings: Settings, status_store: StatusStore) -> Iterator[Sweeper]:
    app = create_app(settings)
    yield Sweeper(settings, status_store, Publisher.from_url(settings.broker), app)
    app.close()


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """The messages in a queue's list, oldest first."""
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)[::-1]]


def pairs(count: int) -> list[tuple[str, str]]:
    return [(f"{n:06d}", f"s3://inp/{n}.jpg") for n in range(count)]


def backdate(client: redis.Redis, key: str, member: str, seconds: float) -> None:
    """An index entry as if it were that many seconds old."""
    client.zadd(key, {member: time.time() - seconds})


def test_a_due_webhook_whose_task_never_went_out_is_sent_again(
    sweeper: Sweeper, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    assert status_store.create_batch("b", pairs(1), META)
    status_store.start("b", "000000", "w")
    status_store.complete("b", "000000", timings={}, output="s3://out/x.jpg")  # no on_complete
    assert redis_client.zscore(WEBHOOKS_DUE_KEY, "b") is not None
    assert sweeper.sweep()["webhooks resent"] == 0  # just due: its task may be on its way
    backdate(redis_client, WEBHOOKS_DUE_KEY, "b", 301)
    assert sweeper.sweep()["webhooks resent"] == 1
    [message] = queued(redis_client, "webhooks")
    assert message["headers"]["task"] == "blurq.send_webhook"
    assert sweeper.sweep()["webhooks resent"] == 0  # re-armed: not every sweep
    status_store.webhook_attempted("b", "delivered")
    assert redis_client.zscore(WEBHOOKS_DUE_KEY, "b") is None


def test_a_creation_nobody_finished_is_dropped(
    sweeper: Sweeper, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    def dying() -> Iterator[tuple[str, str]]:
        yield from pairs(1500)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        status_store.create_batch("b", dying(), META)
    assert sweeper.sweep()["half-created dropped"] == 0  # its claim is fresh
    backdate(redis_client, CREATING_KEY, "b", 61)
    assert sweeper.sweep()["half-created dropped"] == 1
    assert [key for key in redis_client.scan_iter("blurq:*") if "sweep" not in key] == []


def test_a_stopped_sender_is_taken_over_from_where_it_stopped(
    sweeper: Sweeper, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    assert status_store.create_batch("b", pairs(2500), META)
    status_store.still_sending("b", 1000)  # it sent the first chunk, then died
    status_store.start("b", "001001", "w")  # a worker has one of the rest already
    assert sweeper.sweep()["sending taken over"] == 0  # its lease is still good
    redis_client.hset(batch_key("b"), "sending_at", str(time.time() - 61))
    backdate(redis_client, SENDING_KEY, "b", 61)
    assert sweeper.sweep()["sending taken over"] == 1
    ids = [json.loads(m["body"])[0][0][2] for m in queued(redis_client, "bulk")]
    assert ids == [f"{n:06d}" for n in range(1000, 2500) if n != 1001]
    batch = status_store.batch("b")
    assert batch is not None and batch.submitted
    assert sweeper.sweep()["sending taken over"] == 0


def test_a_running_image_whose_message_is_gone_is_sent_again(
    sweeper: Sweeper, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    assert status_store.create_batch("b", pairs(3), META)
    for image_id in ("000000", "000001", "000002"):
        status_store.start("b", image_id, "w")
    old = sweeper.settings.visibility_timeout + 61
    for image_id in ("000000", "000001", "000002"):
        backdate(redis_client, RUNNING_KEY, f"b:{image_id}", old)
    # 000001's message is unacknowledged (its worker holds it), 000002's waits in a queue.
    held = envelope(message_of("b", "000001", "s3://inp/1.jpg"), "bulk")
    redis_client.hset("unacked", "tag", json.dumps([json.loads(held), "", "bulk"]))
    redis_client.lpush("bulk", envelope(message_of("b", "000002", "s3://inp/2.jpg"), "bulk"))
    assert sweeper.sweep()["lost messages resent"] == 1
    image = status_store.image("b", "000000")
    assert image is not None and image.state.value == "queued" and "lost" in image.error
    names = [image_named(json.dumps(message)) for message in queued(redis_client, "bulk")]
    assert names == ["b:000002", "b:000000"]
    assert status_store.start("b", "000000", "w")[:2] == ("running", 2)  # a delivery counted


def test_a_retry_that_cannot_be_published_puts_the_message_back() -> None:
    """Celery rejects for good (requeue=False) when a retry cannot be published; the task turns
    that into a requeue, so an image that is not final never loses its message."""
    from workers.tasks import _retry

    class Unpublishable:
        def retry(self, **_: Any) -> Exception:
            raise Reject("connection refused", requeue=False)

    with pytest.raises(Reject) as raised:
        _retry(Unpublishable(), 1.0, ConnectionError("down"))  # type: ignore[arg-type]
    assert raised.value.requeue is True


def test_a_stalled_expansion_is_sent_to_an_expander_and_a_vanished_one_forgotten(
    sweeper: Sweeper, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    meta = {"output": "s3://out/", "params": "{}", "manifest": "s3://inp/m.txt", "queue": ""}
    assert status_store.create_expanding("b", meta, digest="d")
    assert status_store.create_expanding("gone", meta, digest="d")
    redis_client.delete(batch_key("gone"))  # expired while it was listed
    assert sweeper.sweep()["expansions resent"] == 0  # made just now: its expander may be on it
    for batch_id in ("b", "gone"):
        backdate(redis_client, EXPANDING_KEY, batch_id, 61)
    assert sweeper.sweep()["expansions resent"] == 1
    [task] = queued(redis_client, "expand")
    assert json.loads(base64.b64decode(task["body"]))[0] == ["b"]  # sent by Celery: base64
    assert redis_client.zrange(EXPANDING_KEY, 0, -1) == ["b"]
