"""Retrying failed images: back to queued with the counters, once each, a finished batch again
running with its webhook due again at its new end; and the figures views read with it (image
filters, images per minute, the rate's warm start)."""

from __future__ import annotations

import pytest
import redis

from infra.errors import InvalidJob, QuotaExceeded
from infra.status import EVENTS_KEY, METRICS_KEY, BatchStatus, ImageState, StatusStore, throughput
from infra.status import store as store_module
from infra.status.keys import PHASE_KEYS, image_key
from infra.status.retry import RETRY_CHUNK

pytestmark = pytest.mark.services


def create(store: StatusStore, batch: str = "b", count: int = 4) -> None:
    images = [(f"{n:06d}", f"s3://in/photos/{batch}-{n}.jpg") for n in range(count)]
    assert store.create_batch(batch, images, {"output": "s3://out/", "params": "{}"})


def fail(store: StatusStore, batch: str, image: str, reason: str = "bad image") -> None:
    assert store.start(batch, image, "w")[0] == "running"
    assert store.fail(batch, image, reason) == "failed"


def finish(store: StatusStore, batch: str, image: str) -> None:
    assert store.start(batch, image, "w")[0] == "running"
    assert store.complete(batch, image, timings={"get": 0.1}, output=f"s3://out/{image}") == "done"


def read(store: StatusStore, batch: str = "b") -> BatchStatus:
    found = store.batch(batch)
    assert found is not None
    total = found.queued + found.running + found.done + found.failed + found.cancelled
    assert total == found.total
    return found


def test_failed_images_go_back_to_queued_as_new_and_the_finished_batch_runs_again(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    due: list[str] = []
    status_store.on_complete = due.append
    create(status_store)
    redis_client.hset("blurq:batch:b", "webhook_url", "http://127.0.0.1:1/hook")
    finish(status_store, "b", "000000")
    fail(status_store, "b", "000001")
    for _ in range(2):  # two deliveries of a poison-ish image before it failed
        status_store.start("b", "000002", "w")
    status_store.fail("b", "000002", "timed out")
    fail(status_store, "b", "000003")
    assert due == ["b"]
    status_store.webhook_attempted("b", "delivered")
    assert status_store.outstanding("default") == 0
    sent: list[list[tuple[str, str]]] = []

    assert status_store.retry("b", sent.append) == 3
    assert sent == [[(f"00000{n}", f"s3://in/photos/b-{n}.jpg") for n in (1, 2, 3)]]
    batch = read(status_store)
    assert (batch.queued, batch.failed, batch.done) == (3, 0, 1)
    assert not batch.finished and batch.finished_at is None
    assert (batch.webhook_status, batch.webhook_attempts) == ("", 0)
    assert status_store.outstanding("default") == 3
    assert redis_client.zscore(PHASE_KEYS[1], "b") is not None  # running again
    assert redis_client.zscore(PHASE_KEYS[2], "b") is None
    image = status_store.image("b", "000002")
    assert image is not None and image.state is ImageState.QUEUED
    assert (image.deliveries, image.error, image.retried, image.started_at) == (0, "", 1, None)
    states = [fields["state"] for _, fields in redis_client.xrevrange(EVENTS_KEY, count=3)]
    assert states == ["queued"] * 3

    assert status_store.retry("b", sent.append) == 0  # nothing failed now: nothing sent again
    assert len(sent) == 1
    for image_id in ("000001", "000002"):
        finish(status_store, "b", image_id)
    fail(status_store, "b", "000003", "still bad")
    batch = read(status_store)
    assert batch.finished and (batch.done, batch.failed) == (3, 1)
    assert due == ["b", "b"] and batch.webhook_status == "pending"  # due again, once
    assert redis_client.zscore(PHASE_KEYS[2], "b") is not None


def test_only_the_named_images_and_only_failed_ones(status_store: StatusStore) -> None:
    create(status_store)
    fail(status_store, "b", "000000")
    fail(status_store, "b", "000001")
    finish(status_store, "b", "000002")
    sent: list[tuple[str, str]] = []
    assert status_store.retry("b", sent.extend, image_ids=["000001", "000002", "000003"]) == 1
    assert sent == [("000001", "s3://in/photos/b-1.jpg")]
    assert read(status_store).failed == 1


def test_a_retry_covers_more_than_one_chunk(status_store: StatusStore) -> None:
    count = RETRY_CHUNK + 7
    create(status_store, count=count)
    for n in range(0, count, 2):
        fail(status_store, "b", f"{n:06d}")
    chunks: list[list[tuple[str, str]]] = []
    assert status_store.retry("b", chunks.append) == (count + 1) // 2
    assert [len(chunk) for chunk in chunks] == [
        RETRY_CHUNK // 2,
        (count + 1) // 2 - RETRY_CHUNK // 2,
    ]
    assert read(status_store).failed == 0


def test_refused_for_a_cancelled_or_unknown_batch_and_past_the_quota(
    status_store: StatusStore,
) -> None:
    create(status_store, "gone", 2)
    fail(status_store, "gone", "000000")
    status_store.cancel("gone")
    with pytest.raises(InvalidJob, match="cancelled"):
        status_store.retry("gone", lambda ids: None)
    with pytest.raises(InvalidJob, match="no batch"):
        status_store.retry("nope", lambda ids: None)
    create(status_store, "big", 3)
    for image in ("000000", "000001"):
        fail(status_store, "big", image)
    with pytest.raises(QuotaExceeded):
        status_store.retry("big", lambda ids: None, max_outstanding=2)  # 1 queued + 2 > 2
    assert read(status_store, "big").failed == 2  # nothing moved
    assert status_store.retry("big", lambda ids: None, max_outstanding=3) == 2


def test_review_flags_are_filtered_and_the_key_searched(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    create(status_store, count=5)
    for n, (confidence, review) in enumerate([("0.91", "0"), ("0.42", "1"), ("0.38", "1")]):
        image = f"{n:06d}"
        status_store.start("b", image, "w")
        redis_client.hset(
            image_key("b", image), mapping={"confidence": confidence, "review": review}
        )
        status_store.complete("b", image, timings={}, output=f"s3://out/{n}.jpg")
    doubtful, _ = status_store.image_page("b", review=True)
    assert [(i.image_id, i.confidence) for i in doubtful] == [("000001", 0.42), ("000002", 0.38)]
    sure, _ = status_store.image_page("b", review=False)
    assert [i.image_id for i in sure] == ["000000"]  # images without a flag are neither
    found, _ = status_store.image_page("b", text="B-3")
    assert [i.image_id for i in found] == ["000003"]
    assert status_store.image_page("b", text="in/")[0] == []  # the bucket is not searched
    page, after = status_store.image_page("b", state=ImageState.QUEUED, text="photos", limit=1)
    assert [i.image_id for i in page] == ["000003"] and after == 4


class Clock:
    """Stands in for the time module of the status store."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_images_per_minute_over_the_last_hour_per_tenant_and_fleet(
    status_store: StatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(store_module, "time", clock)
    create(status_store, "shop-a/x", 6)
    create(status_store, "y", 2)
    finish(status_store, "shop-a/x", "000000")
    clock.now += 5  # a failure after five seconds of work
    fail(status_store, "shop-a/x", "000001")
    finish(status_store, "y", "000000")
    clock.now += 120
    finish(status_store, "shop-a/x", "000002")
    minutes = throughput.read(status_store, "shop-a", now=clock.now)
    assert len(minutes) == 60 and minutes[-1].at == (clock.now // 60) * 60
    counted = [(m.done, m.failed) for m in minutes if m.done or m.failed]
    assert counted == [(1, 1), (1, 0)]
    fleet = throughput.read(status_store, None, now=clock.now)
    assert sum(m.done for m in fleet) == 3 and sum(m.failed for m in fleet) == 1
    clock.now += 3600  # an hour later the same slot counts anew
    finish(status_store, "shop-a/x", "000003")
    minutes = throughput.read(status_store, "shop-a", now=clock.now)
    assert [(m.done, m.failed) for m in minutes if m.done or m.failed] == [(1, 0)]
    assert len(status_store.redis.hgetall(METRICS_KEY)) < 200  # the ring does not grow


def test_instant_failures_stay_out_of_the_rate_and_the_first_image_marks_it_warm(
    status_store: StatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(1_700_000_000.0)
    monkeypatch.setattr(store_module, "time", clock)
    create(status_store, count=4)
    fail(status_store, "b", "000000")  # at once: not counted
    assert read(status_store).warm_at is None
    status_store.start("b", "000001", "w")
    clock.now += 3
    status_store.fail("b", "000001", "timed out")  # after three seconds: counted
    status_store.start("b", "000002", "w")
    clock.now += 2
    status_store.complete("b", "000002", timings={}, output="s3://out/2")
    batch = status_store.batches(["b"])[0]
    assert batch.warm_at == clock.now - 2
    raw = status_store.redis.hgetall("blurq:batch:b:rate")
    assert sum(int(count) for count in raw.values()) == 2
