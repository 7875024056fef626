"""Each named transition of the status store makes its one legal move and refuses the others."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from infra.status import EVENTS_KEY, METRICS_KEY, BatchStatus, StatusStore

pytestmark = pytest.mark.services

Transition = Callable[[StatusStore], str]
TRANSITIONS: dict[str, Transition] = {
    "complete": lambda s: s.complete("b", "0", timings={"get": 0.1}, output="s3://out/0.jpg"),
    "fail": lambda s: s.fail("b", "0", "bad image"),
    "requeue": lambda s: s.requeue("b", "0", "retrying: S3 503", retries=1),
    "reject": lambda s: s.reject("b", "0", "invalid job: no params", worker="w"),
}
LEGAL = {
    ("complete", "running"): "done",
    ("fail", "running"): "failed",
    ("requeue", "running"): "queued",
    ("reject", "running"): "failed",
    ("reject", "queued"): "failed",
}
STATES = ("queued", "running", "done", "failed", "cancelled", "missing")


def bring(store: StatusStore, state: str) -> None:
    """Image "0" of batch "b" (two images) in the given state; "missing": no such image."""
    images = [("1", "s3://in/1.jpg")] + ([] if state == "missing" else [("0", "s3://in/0.jpg")])
    assert store.create_batch("b", images, {"output": "s3://out/", "params": "{}"})
    if state in ("running", "done", "failed"):
        assert store.start("b", "0", "w")[0] == "running"
    if state == "done":
        store.complete("b", "0", timings={}, output="s3://out/0.jpg")
    if state == "failed":
        store.fail("b", "0", "bad image")
    if state == "cancelled":
        store.cancel("b")


def adds_up(batch: BatchStatus | None) -> BatchStatus:
    assert batch is not None
    counted = batch.queued + batch.running + batch.done + batch.failed + batch.cancelled
    assert counted == batch.total
    return batch


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_a_transition_moves_only_from_its_legal_states(
    status_store: StatusStore, redis_client: redis.Redis, name: str, state: str
) -> None:
    bring(status_store, state)
    before = adds_up(status_store.batch("b"))
    record = redis_client.hgetall("blurq:image:b:0")
    events = redis_client.xlen(EVENTS_KEY)
    now = TRANSITIONS[name](status_store)
    after = adds_up(status_store.batch("b"))
    if (name, state) not in LEGAL:  # refused: nothing at all changes
        assert now == state
        assert redis_client.hgetall("blurq:image:b:0") == record
        assert (after.queued, after.running, after.done, after.failed, after.cancelled) == (
            before.queued,
            before.running,
            before.done,
            before.failed,
            before.cancelled,
        )
        assert redis_client.xlen(EVENTS_KEY) == events
        return
    assert now == LEGAL[name, state]
    image = status_store.image("b", "0")
    assert image is not None and image.state.value == now
    assert getattr(after, now) == getattr(before, now) + 1
    assert getattr(after, state) == getattr(before, state) - 1
    assert redis_client.xrevrange(EVENTS_KEY, count=1)[0][1]["state"] == now


def test_complete_records_timings_output_and_histograms(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    bring(status_store, "running")
    status_store.requeue("b", "0", "retrying: S3 503", retries=1)
    status_store.start("b", "0", "w")
    assert TRANSITIONS["complete"](status_store) == "done"
    image = status_store.image("b", "0")
    assert image is not None
    assert (image.output, image.timings, image.error, image.retries) == (
        "s3://out/0.jpg",
        {"get": 0.1},
        "",  # the retry's error is cleared
        1,
    )
    assert image.finished_at is not None
    metrics = redis_client.hgetall(METRICS_KEY)
    assert (metrics["images:done"], metrics["stage:get:count"]) == ("1", "1")


def test_reject_fails_a_queued_image_in_one_step(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    bring(status_store, "queued")
    assert TRANSITIONS["reject"](status_store) == "failed"
    image = status_store.image("b", "0")
    assert image is not None and image.error == "invalid job: no params" and image.deliveries == 1
    states = [fields["state"] for _, fields in redis_client.xrange(EVENTS_KEY)]
    assert states == ["failed"]  # one event: it never ran
    batch = adds_up(status_store.batch("b"))
    assert batch.started_at is not None and batch.failed == 1


def test_the_transition_that_finishes_a_batch_calls_for_its_webhook_once(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    completed: list[str] = []
    status_store.on_complete = completed.append
    assert status_store.create_batch("b", [("0", "s3://in/0.jpg"), ("1", "s3://in/1.jpg")], {})
    redis_client.hset("blurq:batch:b", "webhook_url", "http://127.0.0.1:1/hook")
    status_store.reject("b", "1", "invalid job", worker="w")
    status_store.start("b", "0", "w")
    status_store.requeue("b", "0", "retrying", retries=1)
    status_store.start("b", "0", "w")
    assert completed == []
    status_store.fail("b", "0", "bad image")
    status_store.fail("b", "0", "bad image")  # refused: already failed
    assert completed == ["b"]
    batch = adds_up(status_store.batch("b"))
    assert batch.finished and batch.webhook_status == "pending"


def test_a_tenants_outstanding_images_follow_every_move_into_a_final_state(
    status_store: StatusStore,
) -> None:
    """Created: +total; done, failed, rejected, cancelled, poison: -1 each; requeue: unchanged."""
    meta = {"output": "s3://out/", "params": "{}"}
    ids = [(str(n), f"s3://in/{n}.jpg") for n in range(6)]
    assert status_store.create_batch("shop-a/b", ids, meta)
    assert status_store.create_batch("shop-b/b", ids[:2], meta)  # the same id, another tenant
    assert (status_store.outstanding("shop-a"), status_store.outstanding("shop-b")) == (6, 2)
    for image in "0123":
        status_store.start("shop-a/b", image, "w")
    status_store.complete("shop-a/b", "0", timings={}, output="s3://out/0.jpg")
    status_store.fail("shop-a/b", "1", "bad image")
    status_store.reject("shop-a/b", "2", "invalid job", worker="w")
    status_store.requeue("shop-a/b", "3", "S3 503", retries=1)
    assert status_store.outstanding("shop-a") == 3  # 3 (requeued), 4 and 5 still queued
    for _ in range(2):  # delivered twice so far, max_deliveries 3: the fourth is poison
        status_store.start("shop-a/b", "3", "w")
    assert status_store.start("shop-a/b", "3", "w")[0] == "poison"
    assert status_store.cancel("shop-a/b") == 2
    assert (status_store.outstanding("shop-a"), status_store.outstanding("shop-b")) == (0, 2)
    listed = [batch.batch_id for batch in status_store.recent_batches(tenant="shop-b")]
    assert listed == ["shop-b/b"]
