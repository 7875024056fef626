"""Batch creation survives an interruption, and a long batch keeps its keys (real Redis)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from infra.errors import BatchConflict, QuotaExceeded, StatusUnavailable, TransientError
from infra.jobs import JobMessage
from infra.publish import PUBLISH_CHUNK, Publisher
from infra.settings import Settings
from infra.status import (
    BATCHES_KEY,
    CLAIM_TTL_S,
    CREATE_CHUNK,
    CREATING_KEY,
    EVENTS_KEY,
    METRICS_KEY,
    PHASE_KEYS,
    RUNNING_KEY,
    SEND_LEASE_S,
    SENDING_KEY,
    WEBHOOKS_DUE_KEY,
    StatusStore,
    batch_key,
    image_key,
    images_key,
    rate_key,
    tenant_batches_key,
    tenant_key,
)
from producer.client import Client

pytestmark = pytest.mark.services

COUNT = 2 * CREATE_CHUNK + 7  # three chunks


def pairs(count: int = COUNT) -> list[tuple[str, str]]:
    return [(f"{n:06d}", f"s3://inp/{n}.jpg") for n in range(count)]


def stopping(after: int) -> Iterator[tuple[str, str]]:
    """The batch's images, and then the submitting process stops (an exception) half-way."""
    yield from pairs()[:after]
    raise KeyboardInterrupt


SWEPT_INDEXES = {CREATING_KEY, SENDING_KEY, RUNNING_KEY, WEBHOOKS_DUE_KEY}  # the sweep's: no TTL


def without_ttl(client: redis.Redis) -> list[str]:
    keys = client.scan_iter("blurq:*")
    return [key for key in keys if client.ttl(key) < 0 and key not in SWEPT_INDEXES]


def assert_whole(store: StatusStore, client: redis.Redis, batch_id: str = "b") -> None:
    batch = store.batch(batch_id)
    assert batch is not None and (batch.total, batch.queued) == (COUNT, COUNT)
    ids = client.lrange(images_key(batch_id), 0, -1)
    assert ids == [image_id for image_id, _ in pairs()]  # each once, in order
    images = store.images(batch_id, count=2 * COUNT)
    assert all(image.state.value == "queued" and image.deliveries == 0 for image in images)
    assert len(images) == COUNT
    # The indexes are trimmed, not expired; the tenant's counters outlive its batches.
    assert sorted(without_ttl(client)) == [
        "blurq:batches",
        "blurq:batches:default",
        "blurq:batches:phase:queued",
        "blurq:tenant:default",
    ]


@pytest.mark.parametrize("after", [0, CREATE_CHUNK + 10, COUNT])
def test_an_interrupted_creation_leaves_nothing_forever_and_is_completed_on_resubmission(
    status_store: StatusStore, redis_client: redis.Redis, after: int
) -> None:
    with pytest.raises(KeyboardInterrupt):
        status_store.create_batch("b", stopping(after), {"output": "s3://out/"})
    assert status_store.batch("b") is None  # reads as absent, not half there
    assert without_ttl(redis_client) == []
    assert redis_client.zrange("blurq:batches", 0, -1) == []
    assert status_store.create_batch("b", pairs(), {"output": "s3://out/", "params": "{}"})
    assert_whole(status_store, redis_client)
    assert not status_store.create_batch("b", pairs(), {})  # now it exists


def test_a_submission_that_lost_its_claim_stops(status_store: StatusStore) -> None:
    def overtaken() -> Iterator[tuple[str, str]]:
        yield from pairs()[: CREATE_CHUNK + 1]
        # Another submission of the same id starts (and finishes) while this one writes.
        assert status_store.create_batch("b", pairs(), {"output": "s3://out/", "params": "{}"})

    with pytest.raises(TransientError, match="another submission"):
        status_store.create_batch("b", overtaken(), {"output": "s3://out/"})
    batch = status_store.batch("b")
    assert batch is not None and batch.total == COUNT


def sent(client: redis.Redis, queue: str = "bulk") -> list[JobMessage]:
    """The job messages in the queue's Redis list, first sent first (what a worker would take)."""
    bodies = [json.loads(json.loads(raw)["body"]) for raw in client.lrange(queue, 0, -1)[::-1]]
    return [JobMessage.decode(body[0][0]) for body in bodies]


class _Dying(Publisher):
    """A real publisher whose process dies while pushing its second chunk."""

    pushes, dies = 0, True

    def push(self, queue: str, values: list[str]) -> None:
        self.pushes += 1
        if self.dies and self.pushes == 2:
            raise KeyboardInterrupt
        super().push(queue, values)


def test_a_resubmission_after_redis_dropped_mid_creation_sends_each_image_once(
    status_store: StatusStore, redis_client: redis.Redis, settings: Settings
) -> None:
    client = Client(settings, status=status_store)
    uris = [source for _, source in pairs()]
    script = status_store._scripts["create_images"]
    calls = 0

    def dropping(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise redis.ConnectionError("connection reset by peer")
        return script(**kwargs)

    status_store._scripts["create_images"] = dropping
    with pytest.raises(StatusUnavailable):
        client.submit(uris=uris, output="s3://out/x/", batch_id="b")
    assert sent(redis_client) == [] and without_ttl(redis_client) == []
    assert client.submit_batch(uris=uris, output="s3://out/x/", batch_id="b").created
    assert [message.image_id for message in sent(redis_client)] == [i for i, _ in pairs()]
    redis_client.delete("bulk")  # the queue has no TTL by design; checked as it is above
    assert_whole(status_store, redis_client)
    client.submit(uris=uris, output="s3://out/x/", batch_id="b")  # a third time: sends nothing
    assert sent(redis_client) == []


def test_a_sender_that_died_is_taken_over_only_once_its_lease_lapsed(
    settings: Settings, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """Resubmissions racing a live sender send nothing; one after a dead sender's lease sends
    what it had not sent."""
    publisher = _Dying(redis.Redis.from_url(settings.broker))
    client = Client(settings, status=status_store, publisher=publisher)
    uris = [source for _, source in pairs()]
    with pytest.raises(KeyboardInterrupt):
        client.submit(uris=uris, output="s3://out/x/", batch_id="b")
    publisher.dies = False
    assert not client.submit_batch(uris=uris, output="s3://out/x/", batch_id="b").created
    assert len(sent(redis_client)) == PUBLISH_CHUNK  # its lease was renewed: still its own
    lapsed = time.time() - SEND_LEASE_S - 1
    redis_client.hset(batch_key("b"), "sending_at", str(lapsed))  # as if a minute had passed
    status_store.start("b", "000000", "w")  # an image taken by a worker is not sent again
    status_store.start("b", f"{PUBLISH_CHUNK + 1:06d}", "w")
    client.submit(uris=uris, output="s3://out/x/", batch_id="b")
    ids = [message.image_id for message in sent(redis_client)]
    expected = [i for i, _ in pairs()]
    del expected[PUBLISH_CHUNK + 1]
    assert ids == expected  # the dead sender's chunk, then the rest: each once
    client.submit(uris=uris, output="s3://out/x/", batch_id="b")  # all sent: nothing more
    assert len(sent(redis_client)) == COUNT - 1


def test_a_batch_running_longer_than_the_ttl_keeps_its_image_list_and_rate(
    redis_client: redis.Redis,
) -> None:
    store = StatusStore(redis_client, ttl=60, max_deliveries=3)
    assert store.create_batch("b", pairs(3), {})
    store.start("b", "000000", "w")
    store.complete("b", "000000", timings={}, output="")
    keys = (batch_key("b"), images_key("b"), rate_key("b"), image_key("b", "000001"))
    for key in keys:  # as if the batch had been running for most of its TTL
        redis_client.expire(key, 5)
    store.start("b", "000001", "w")
    for key in keys:
        assert 55 < redis_client.ttl(key) <= 60, key
    assert store.cancel("b") == 1
    for key in keys[:3]:
        redis_client.expire(key, 5)
    store.complete("b", "000001", timings={}, output="")  # the last one: finishes the batch
    assert all(55 < redis_client.ttl(key) <= 60 for key in keys[:3])
    assert len(store.images("b")) == 3


def test_writes_after_a_record_expired_never_leave_a_key_without_ttl(
    redis_client: redis.Redis,
) -> None:
    """Submitted marks and stages skip records that expired; webhook outcomes get the TTL."""
    store = StatusStore(redis_client, ttl=60, max_deliveries=3)
    assert store.create_batch("b", pairs(2), {})
    store.start("b", "000000", "w")
    redis_client.expire(batch_key("b"), 30)
    store.mark_submitted("b")
    assert redis_client.ttl(batch_key("b")) <= 30, "a live record keeps the TTL it has"
    redis_client.delete(batch_key("b"), image_key("b", "000000"))  # both expired meanwhile
    store.mark_submitted("b")
    store.set_stage("b", "000000", "bokeh")
    store.webhook_attempted("b", "retrying", "timed out")
    # The keys that have no TTL by design: indexes, the tenant's counters, events, metrics.
    lasting = {BATCHES_KEY, tenant_batches_key("default"), tenant_key("default")}
    lasting |= {EVENTS_KEY, METRICS_KEY, *PHASE_KEYS}
    assert [key for key in without_ttl(redis_client) if key not in lasting] == []


def test_a_request_with_another_digest_gets_a_conflict_even_mid_creation(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """Two racing submissions of one id for different requests: one batch, one BatchConflict."""
    meta = {"output": "s3://out/", "params": "{}"}
    conflicts: list[str] = []

    def racing() -> Iterator[tuple[str, str]]:
        yield from pairs()[: CREATE_CHUNK + 1]
        # Another request for the same id arrives while this one is writing.
        with pytest.raises(BatchConflict) as raised:
            status_store.create_batch("b", pairs(), meta, digest="other")
        conflicts.append(str(raised.value))
        yield from pairs()[CREATE_CHUNK + 1 :]

    assert status_store.create_batch("b", racing(), meta, digest="first")
    assert conflicts and "exists with other" in conflicts[0]
    assert_whole(status_store, redis_client)
    assert not status_store.create_batch("b", pairs(), meta, digest="first")  # the same: no-op
    with pytest.raises(BatchConflict):
        status_store.create_batch("b", pairs(), meta, digest="other")
    batch = status_store.batch("b")
    assert batch is not None and batch.request_digest == "first"


def test_a_dead_submissions_claim_lapses_soon(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """A submission that died half-way blocks other requests only for the claim's short TTL."""
    with pytest.raises(KeyboardInterrupt):
        status_store.create_batch("b", stopping(CREATE_CHUNK + 10), {}, digest="dead")
    assert 0 < redis_client.ttl(batch_key("b")) <= CLAIM_TTL_S
    redis_client.delete(batch_key("b"))  # as when the claim's TTL has run out
    assert status_store.create_batch("b", pairs(), {"output": "s3://out/"}, digest="other")


def test_what_a_dead_creation_wrote_is_dropped_once_its_claim_is_stale(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """The image records of a creation nobody finishes go (the sweep's job), not only at TTL;
    a creation claimed since the cutoff, or one made whole, is left alone."""
    with pytest.raises(KeyboardInterrupt):
        status_store.create_batch("b", stopping(CREATE_CHUNK + 10), {}, digest="dead")
    claimed = float(redis_client.zscore(CREATING_KEY, "b") or 0)
    assert redis_client.exists(image_key("b", "000000"))
    assert not status_store.drop_half_created("b", claimed - 1)  # claimed after the cutoff
    assert redis_client.exists(image_key("b", "000000"))
    assert status_store.drop_half_created("b", claimed)
    assert list(redis_client.scan_iter("blurq:*")) == []
    assert status_store.create_batch("b", pairs(3), {"output": "s3://out/", "params": "{}"})
    assert status_store.drop_half_created("b", time.time())  # made whole: left alone
    assert status_store.batch("b") is not None and len(status_store.images("b")) == 3


def test_the_outstanding_limit_is_checked_in_the_step_that_counts(
    status_store: StatusStore,
) -> None:
    """Two submissions racing for a tenant's last outstanding images cannot both pass."""
    meta = {"output": "s3://out/", "params": "{}"}
    assert status_store.create_batch("a", pairs(3), meta, max_outstanding=5)

    def racing() -> Iterator[tuple[str, str]]:
        yield from pairs(2)
        # Another submission takes the last two places while this one is being written.
        assert status_store.create_batch("c", pairs(2), meta, max_outstanding=5)

    with pytest.raises(QuotaExceeded) as raised:
        status_store.create_batch("b", racing(), meta, max_outstanding=5)
    assert raised.value.retry_after > 0
    assert status_store.batch("b") is None and status_store.outstanding("default") == 5


def test_a_stage_written_after_the_image_expired_brings_back_no_fragment(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """A fragment holding only ``stage`` would break every listing of the batch's images."""
    assert status_store.create_batch("b", pairs(2), {"output": "s3://out/"})
    redis_client.delete(image_key("b", "000000"))  # expired while its worker was still at it
    status_store.set_stage("b", "000000", "bokeh")
    assert not redis_client.exists(image_key("b", "000000"))
    assert [image.image_id for image in status_store.images("b")] == ["000001"]
