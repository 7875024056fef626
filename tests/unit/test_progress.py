"""One definition of a batch's rate and ETA, shown alike by the CLI's bar and the HTTP API."""

from __future__ import annotations

import re

import pytest

from infra.status import BatchStatus, RecentWindow, StatusStore, progress
from producer.cli.progress import render
from producer.http.schemas import Batch

T0 = 1_700_000_000.0


def batch(**changes: object) -> BatchStatus:
    fields: dict[str, object] = {
        "batch_id": "b",
        "total": 100,
        "queued": 40,
        "running": 4,
        "done": 50,
        "failed": 6,
        "created_at": T0,
        "started_at": T0 + 10,
        "finished_at": None,
        "submitted": True,
        "output": "s3://out/",
    }
    return BatchStatus(**{**fields, **changes})  # type: ignore[arg-type]


RUNNING = batch(recent=RecentWindow(finished=21, since=T0 + 940, until=T0 + 1010))
YOUNG = batch(recent=RecentWindow(finished=8, since=T0 - 50, until=T0 + 30))  # started T0 + 10
FINISHED = batch(queued=0, running=0, done=90, failed=4, cancelled=6, finished_at=T0 + 210)


def test_running_batches_count_the_recent_window() -> None:
    assert progress.rate(RUNNING) == pytest.approx(21 / 70)
    assert progress.eta_seconds(RUNNING) == pytest.approx(44 / (21 / 70))
    assert progress.rate(YOUNG) == pytest.approx(8 / 20)  # the window starts with the batch


def test_finished_batches_keep_their_average_without_the_cancelled_images() -> None:
    assert progress.rate(FINISHED) == pytest.approx(94 / 200)
    assert progress.eta_seconds(FINISHED) is None


def test_before_anything_finished_there_is_no_rate_nor_eta() -> None:
    waiting = batch(started_at=None, queued=100, running=0, done=0, failed=0)
    assert (progress.rate(waiting), progress.eta_seconds(waiting)) == (0.0, None)
    quiet = batch(recent=RecentWindow(finished=0, since=T0 + 940, until=T0 + 1010))
    assert (progress.rate(quiet), progress.eta_seconds(quiet)) == (0.0, None)


def shown(status: BatchStatus) -> tuple[str | None, str | None]:
    """The rate and ETA on the CLI's progress line."""
    line = render(status, now=T0 + 1010)
    rate = re.search(r"(\d+\.\d\d) img/s", line)
    eta = re.search(r"ETA (\S+)", line)
    return (rate.group(1) if rate else None), (eta.group(1) if eta else None)


def answered(status: BatchStatus) -> tuple[str | None, str | None]:
    """The rate and ETA of the API's answer, written as the CLI writes them."""
    from producer.cli.progress import _duration

    body = Batch.of(status).model_dump()
    rate = f"{body['rate']:.2f}" if body["rate"] > 0 and not body["estimating"] else None
    eta = None if body["eta_seconds"] is None else _duration(body["eta_seconds"])
    return rate, eta


@pytest.mark.parametrize("status", [RUNNING, YOUNG, FINISHED], ids=["running", "young", "done"])
def test_the_cli_and_the_api_show_the_same_figures(status: BatchStatus) -> None:
    assert shown(status) == answered(status)
    assert shown(status)[0] is not None


WARM = batch(warm_at=T0 + 990, recent=RecentWindow(finished=9, since=T0 + 940, until=T0 + 1010))
WARMING = batch(warm_at=T0 + 1005, recent=RecentWindow(finished=3, since=T0 + 940, until=T0 + 1010))


def test_the_rate_starts_after_the_first_processed_image() -> None:
    # A cold worker took until T0 + 990 for the first image: the 8 after it in 20 s set the pace.
    assert progress.rate(WARM) == pytest.approx(8 / 20)
    assert not progress.estimating(WARM)
    assert progress.eta_seconds(WARM) == pytest.approx(44 / (8 / 20))


def test_too_few_images_or_seconds_is_estimating_without_an_eta() -> None:
    assert progress.rate(WARMING) == pytest.approx(2 / 5)
    assert progress.estimating(WARMING) and progress.eta_seconds(WARMING) is None
    assert Batch.of(WARMING).estimating and "estimating" in render(WARMING, now=T0 + 1010)
    assert not progress.estimating(FINISHED) and not Batch.of(RUNNING).estimating


@pytest.mark.services
def test_the_same_figures_for_a_batch_read_from_redis(status_store: StatusStore) -> None:
    images = [(f"{n}", f"s3://in/{n}.jpg") for n in range(8)]
    assert status_store.create_batch("b", images, {"output": "s3://out/", "params": "{}"})
    for image_id in "012345":
        status_store.start("b", image_id, "w")
    for image_id in "01234":
        status_store.complete("b", image_id, timings={}, output="")
    status_store.fail("b", "5", "bad image")  # at once: not in the rate
    status = status_store.batch("b")
    assert status is not None and status.recent is not None and status.recent.finished == 5
    assert progress.rate(status) == pytest.approx(4.0)  # 4 after the first, within a second
    assert progress.estimating(status)  # ... which is too short to promise an ETA
    assert shown(status) == answered(status)
