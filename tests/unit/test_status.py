"""The Redis status store on a real redis-server: transitions, counters, deliveries, poison."""

from __future__ import annotations

import redis

from infra.status import EVENTS_KEY, ImageState, StatusStore, batch_key, image_key


def create(store: StatusStore, batch: str = "b", count: int = 3) -> None:
    images = [(f"{n:06d}", f"s3://in/{n}.jpg") for n in range(count)]
    assert store.create_batch(batch, images, {"output": "s3://out/x/", "params": "{}"})


def counters_add_up(store: StatusStore, batch: str = "b") -> None:
    status = store.batch(batch)
    assert status is not None
    assert status.queued + status.running + status.done + status.failed == status.total


def test_new_batch_is_all_queued(status_store: StatusStore) -> None:
    create(status_store, count=2500)  # more than one write chunk
    status = status_store.batch("b")
    assert status is not None
    assert (status.total, status.queued, status.done, status.submitted) == (2500, 2500, 0, False)
    assert len(status_store.images("b", count=5000)) == 2500
    status_store.mark_submitted("b")
    assert status_store.batch("b").submitted  # type: ignore[union-attr]


def test_a_batch_id_is_created_once(status_store: StatusStore) -> None:
    create(status_store)
    assert not status_store.create_batch("b", [("x", "s3://in/x.jpg")], {})
    assert status_store.batch("b").total == 3  # type: ignore[union-attr]


def test_transitions_move_counters_together(status_store: StatusStore) -> None:
    create(status_store)
    assert status_store.start("b", "000000", "w") == ("running", 1)
    assert (
        status_store.finish(
            "b", "000000", ImageState.DONE, timings={"get": 0.5}, output="s3://out/x/0.jpg"
        )
        == "done"
    )
    assert status_store.start("b", "000001", "w")[0] == "running"
    assert status_store.finish("b", "000001", ImageState.FAILED, error="bad image") == "failed"
    status = status_store.batch("b")
    assert status is not None
    assert (status.queued, status.running, status.done, status.failed) == (1, 0, 1, 1)
    assert not status.finished and status.started_at is not None
    done = status_store.images("b", state=ImageState.DONE)
    assert [image.output for image in done] == ["s3://out/x/0.jpg"]
    assert done[0].timings == {"get": 0.5}
    assert status_store.images("b", state=ImageState.FAILED)[0].error == "bad image"


def test_redelivery_does_not_double_count(status_store: StatusStore) -> None:
    create(status_store, count=1)
    status_store.start("b", "000000", "w1")
    assert status_store.start("b", "000000", "w2") == ("running", 2)  # worker died, redelivered
    counters_add_up(status_store)
    status_store.finish("b", "000000", ImageState.DONE)
    assert status_store.finish("b", "000000", ImageState.DONE) == "done"  # a second finish: no-op
    assert status_store.start("b", "000000", "w3") == ("done", 0)  # late duplicate: skipped
    status = status_store.batch("b")
    assert status is not None and (status.done, status.running, status.total) == (1, 0, 1)
    assert status.finished and status.finished_at is not None


def test_retry_goes_back_to_queued(status_store: StatusStore) -> None:
    create(status_store, count=1)
    status_store.start("b", "000000", "w")
    status_store.finish("b", "000000", ImageState.QUEUED, error="retrying: S3 503")
    assert status_store.batch("b").queued == 1  # type: ignore[union-attr]
    assert status_store.start("b", "000000", "w") == ("running", 2)
    counters_add_up(status_store)


def test_poison_image_fails_after_max_deliveries(status_store: StatusStore) -> None:
    create(status_store, count=2)
    outcomes = [status_store.start("b", "000000", "w")[0] for _ in range(4)]
    assert outcomes == ["running", "running", "running", "poison"]
    image = status_store.images("b")[0]
    assert image.state is ImageState.FAILED and "poison" in image.error
    assert status_store.start("b", "000000", "w")[0] == "failed"  # stays failed
    counters_add_up(status_store)
    status = status_store.batch("b")
    assert status is not None and (status.failed, status.running, status.queued) == (1, 0, 1)


def test_unknown_image_is_reported_missing(status_store: StatusStore) -> None:
    assert status_store.start("nope", "000000", "w")[0] == "missing"


def test_records_expire_and_events_are_streamed(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    create(status_store, count=1)
    status_store.start("b", "000000", "w")
    status_store.finish("b", "000000", ImageState.DONE)
    assert 0 < redis_client.ttl(batch_key("b")) <= 3600
    assert 0 < redis_client.ttl(image_key("b", "000000")) <= 3600
    states = [fields["state"] for _, fields in redis_client.xrange(EVENTS_KEY)]
    assert states == ["running", "done"]


def test_batch_index_drops_batches_past_their_ttl(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    import time

    from infra.status import BATCHES_KEY

    redis_client.zadd(BATCHES_KEY, {"ancient": time.time() - 2 * status_store.ttl})
    create(status_store, "fresh")
    assert redis_client.zrange(BATCHES_KEY, 0, -1) == ["fresh"]
