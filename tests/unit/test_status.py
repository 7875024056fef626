"""The Redis status store on a real redis-server: transitions, counters, deliveries, poison."""

from __future__ import annotations

import pytest
import redis
from click.testing import CliRunner

from infra.settings import Settings
from infra.status import EVENTS_KEY, ImageState, StatusStore, batch_key, image_key
from producer.cli import main

pytestmark = pytest.mark.services


def create(store: StatusStore, batch: str = "b", count: int = 3) -> None:
    images = [(f"{n:06d}", f"s3://in/{n}.jpg") for n in range(count)]
    assert store.create_batch(batch, images, {"output": "s3://out/x/", "params": "{}"})


def counters_add_up(store: StatusStore, batch: str = "b") -> None:
    status = store.batch(batch)
    assert status is not None
    assert (
        status.queued + status.running + status.done + status.failed + status.cancelled
        == status.total
    )


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
    assert status_store.start("b", "000000", "w")[:2] == ("running", 1)
    assert (
        status_store.complete("b", "000000", timings={"get": 0.5}, output="s3://out/x/0.jpg")
        == "done"
    )
    assert status_store.start("b", "000001", "w")[0] == "running"
    assert status_store.fail("b", "000001", "bad image") == "failed"
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
    assert status_store.start("b", "000000", "w2")[:2] == ("running", 2)  # worker died, redelivered
    counters_add_up(status_store)
    status_store.complete("b", "000000", timings={}, output="")
    assert status_store.complete("b", "000000", timings={}, output="") == "done"  # a no-op
    assert status_store.start("b", "000000", "w3")[:2] == ("done", 0)  # late duplicate: skipped
    status = status_store.batch("b")
    assert status is not None and (status.done, status.running, status.total) == (1, 0, 1)
    assert status.finished and status.finished_at is not None


def test_retry_goes_back_to_queued(status_store: StatusStore) -> None:
    create(status_store, count=1)
    status_store.start("b", "000000", "w")
    assert status_store.requeue("b", "000000", "retrying: S3 503", retries=1) == "queued"
    assert status_store.batch("b").queued == 1  # type: ignore[union-attr]
    image = status_store.image("b", "000000")
    assert image is not None and (image.retries, image.error) == (1, "retrying: S3 503")
    assert status_store.start("b", "000000", "w")[:2] == ("running", 2)
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
    status_store.complete("b", "000000", timings={}, output="")
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


def test_cancel_skips_queued_images_and_lets_running_ones_finish(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    completed: list[str] = []
    status_store.on_complete = completed.append
    create(status_store, count=4)
    redis_client.hset(batch_key("b"), "webhook_url", "http://127.0.0.1:1/hook")
    status_store.start("b", "000000", "w")
    status_store.start("b", "000001", "w")
    status_store.complete("b", "000001", timings={}, output="")
    assert status_store.cancel("b") == 2  # 000002 and 000003 were queued
    status = status_store.batch("b")
    assert status is not None and status.cancel_requested
    assert (status.queued, status.running, status.done, status.cancelled) == (0, 1, 1, 2)
    assert not status.finished and completed == []
    counters_add_up(status_store)
    cancelled = status_store.images("b", state=ImageState.CANCELLED)
    assert [image.image_id for image in cancelled] == ["000002", "000003"]
    assert all("cancelled" in image.error for image in cancelled)
    # The late message of a cancelled image is skipped; the running one still finishes.
    assert status_store.start("b", "000002", "w")[:2] == ("cancelled", 0)
    assert status_store.complete("b", "000000", timings={}, output="") == "done"
    status = status_store.batch("b")
    assert status is not None and status.finished and status.finished_at is not None
    assert completed == ["b"]  # the webhook is due exactly once
    assert status_store.cancel("b") == 0  # cancelling again changes nothing
    assert completed == ["b"] and status_store.batch("b").webhook_status == "pending"  # type: ignore[union-attr]


def test_start_refuses_a_queued_image_of_a_cancelled_batch(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    create(status_store, count=2)
    status_store.start("b", "000000", "w")
    status_store.requeue("b", "000000", "retrying: S3 503", retries=1)
    # Only the flag is set (as when a cancel races with a message already on its way).
    redis_client.hset(batch_key("b"), "cancelled_at", "1")
    assert status_store.start("b", "000000", "w")[:2] == ("cancelled", 0)
    assert status_store.start("b", "000001", "w")[:2] == ("cancelled", 0)
    counters_add_up(status_store)
    status = status_store.batch("b")
    assert status is not None and status.finished and status.cancelled == 2
    assert [fields["state"] for _, fields in redis_client.xrange(EVENTS_KEY)][-2:] == [
        "cancelled",
        "cancelled",
    ]


def test_cancel_of_an_unknown_batch_is_none(status_store: StatusStore) -> None:
    assert status_store.cancel("nope") is None


def test_cancel_covers_more_than_one_chunk(status_store: StatusStore) -> None:
    from infra.status import CANCEL_CHUNK

    create(status_store, count=CANCEL_CHUNK * 2 + 3)
    assert status_store.cancel("b") == CANCEL_CHUNK * 2 + 3
    counters_add_up(status_store)
    assert status_store.batch("b").finished  # type: ignore[union-attr]


def test_finish_records_metrics_and_rate(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    from infra.status import METRICS_KEY, stage_histograms

    create(status_store, count=3)
    timings = {"get": 0.02, "matting": 1.5}
    status_store.start("b", "000000", "w")
    status_store.complete("b", "000000", timings=timings, output="s3://out/x/0.jpg")
    status_store.start("b", "000001", "w")
    status_store.fail("b", "000001", "bad image")  # failed: counted, but its timings are not
    status_store.complete("b", "000000", timings={"get": 9.0}, output="")  # no-op: not running
    raw = redis_client.hgetall(METRICS_KEY)
    assert (int(raw["images:done"]), int(raw["images:failed"])) == (1, 1)
    histograms = {h.stage: h for h in stage_histograms(raw)}
    assert histograms["get"].count == 1 and abs(histograms["get"].total_seconds - 0.02) < 1e-9
    assert (
        dict(histograms["get"].buckets)["0.01"] == 0
        and dict(histograms["get"].buckets)["0.025"] == 1
    )
    assert dict(histograms["matting"].buckets)["+Inf"] == 1 and histograms["bokeh"].count == 0
    status = status_store.batch("b")
    # The failure came at once (a bad image): it says nothing of the pace, so only the done
    # image is in the rate buckets.
    assert status is not None and status.recent is not None and status.recent.finished == 1


def test_cancel_command_cancels_the_batch_and_reports_it(
    status_store: StatusStore, settings: Settings
) -> None:
    """`blurq cancel` on a real Redis: queued images end cancelled; an unknown batch is an error."""
    create(status_store, "cli-cancel", count=4)
    status_store.start("cli-cancel", "000000", "worker")
    runner = CliRunner()
    result = runner.invoke(main, ["cancel", "cli-cancel", "--redis-url", settings.redis_url])
    assert result.exit_code == 0, result.output
    assert "cancelled 3" in result.output
    batch = status_store.batch("cli-cancel")
    assert batch is not None and batch.cancelled == 3 and batch.running == 1
    missing = runner.invoke(main, ["cancel", "no-such-batch", "--redis-url", settings.redis_url])
    assert missing.exit_code == 1 and "no batch 'no-such-batch'" in missing.output


def scanned_states(store: StatusStore) -> dict[str, int]:
    """Batches by state the slow way, from every record (what /metrics did before phases)."""
    counts = dict.fromkeys(("queued", "running", "finished", "cancelled"), 0)
    for batch in store.recent_batches(10_000):
        if batch.cancel_requested:
            counts["cancelled"] += 1
        elif batch.finished:
            counts["finished"] += 1
        else:
            counts["running" if batch.started_at else "queued"] += 1
    return counts


def test_batches_by_state_are_counted_without_reading_any_batch(
    status_store: StatusStore, redis_client: redis.Redis
) -> None:
    """/metrics' batch gauge follows every transition and costs five ZCARDs at any size."""
    for name in ("queued", "running", "finished", "cancelled", "cancelled-late", "rejected"):
        create(status_store, name, count=2)
    status_store.start("running", "000000", "w")
    for image in ("000000", "000001"):
        status_store.start("finished", image, "w")
        status_store.complete("finished", image, timings={}, output="")
    status_store.cancel("cancelled")  # queued: both images cancelled, so also finished
    status_store.start("cancelled-late", "000000", "w")
    status_store.cancel("cancelled-late")  # running: stays cancelled when its last one ends
    status_store.complete("cancelled-late", "000000", timings={}, output="")
    status_store.reject("rejected", "000000", "invalid job: schema", worker="w")  # it started
    expected = {"queued": 1, "running": 2, "finished": 1, "cancelled": 2}
    assert scanned_states(status_store) == expected
    before = redis_client.info("commandstats")
    assert status_store.batch_states() == expected | {"expanding": 0}
    after = redis_client.info("commandstats")
    reads = ("cmdstat_hgetall", "cmdstat_hmget", "cmdstat_hget", "cmdstat_zrange")
    assert all(before.get(r, {}).get("calls") == after.get(r, {}).get("calls") for r in reads)
    assert after["cmdstat_zcard"]["calls"] - before.get("cmdstat_zcard", {}).get("calls", 0) == 5
