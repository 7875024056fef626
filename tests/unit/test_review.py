"""Matte confidence and review from the worker's result to the record, the CLI and the S3 output.

On a real redis-server: the confidence and review flag a completion writes, the batch's review
count, the listing filter, and ``blurq status --review``.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from infra.settings import Settings
from infra.status import ImageState, StatusStore
from producer.cli import main
from workers.matting.confidence import Confidence
from workers.pipeline import confidence_metadata, read_confidence

pytestmark = pytest.mark.services


def finished_batch(store: StatusStore, batch: str = "b") -> None:
    """Four images: two flagged for review, one confident, one done before scores were kept."""
    images = [(f"{n:06d}", f"s3://in/{n}.jpg") for n in range(4)]
    assert store.create_batch(batch, images, {"output": "s3://out/x/", "params": "{}"})
    scores: list[tuple[float | None, bool]] = [(0.31, True), (0.92, False), (0.2, True)]
    scores.append((None, False))
    for n, (confidence, review) in enumerate(scores):
        image = f"{n:06d}"
        store.start(batch, image, "w")
        output = f"s3://out/x/{n}.jpg"
        done = store.complete(
            batch, image, timings={}, output=output, confidence=confidence, review=review
        )
        assert done == "done"


def test_completion_records_the_confidence_and_counts_reviews_once(
    status_store: StatusStore,
) -> None:
    finished_batch(status_store)
    # a duplicate completion (a redelivered message) is a no-op: the count stays
    status_store.complete("b", "000000", timings={}, output="", confidence=0.1, review=True)
    batch = status_store.batch("b")
    assert batch is not None and batch.review == 2 and batch.finished
    images = status_store.images("b")
    assert [(i.confidence, i.review) for i in images] == [
        (0.31, True),
        (0.92, False),
        (0.2, True),
        (None, None),
    ]


def test_the_listing_filters_images_that_need_review(status_store: StatusStore) -> None:
    finished_batch(status_store)
    flagged, end = status_store.image_page("b", review=True, limit=10)
    assert [image.image_id for image in flagged] == ["000000", "000002"] and end is None
    page, after = status_store.image_page("b", review=True, limit=1)
    assert [image.image_id for image in page] == ["000000"] and after == 1
    confident, _ = status_store.image_page("b", review=False, state=ImageState.DONE)
    assert [image.image_id for image in confident] == ["000001"]


def test_status_command_shows_the_count_and_lists_the_images(
    status_store: StatusStore, settings: Settings
) -> None:
    finished_batch(status_store, "shoot")
    runner = CliRunner()
    plain = runner.invoke(main, ["status", "shoot", "--redis-url", settings.redis_url])
    assert plain.exit_code == 0, plain.output
    assert "review 2" in plain.output and "s3://in/0.jpg" not in plain.output
    listed = runner.invoke(main, ["status", "shoot", "--review", "--redis-url", settings.redis_url])
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.output.splitlines()[1:]]
    assert rows == [
        ["s3://in/0.jpg", "0.310", "s3://out/x/0.jpg"],
        ["s3://in/2.jpg", "0.200", "s3://out/x/2.jpg"],
    ]


def test_confidence_survives_in_the_outputs_metadata() -> None:
    """A re-run that finds the output already rendered reads the confidence back from S3."""
    metadata = confidence_metadata(Confidence(0.4567, True, {"mid_area": 0.2}))
    assert metadata == {"blurq-confidence": "0.457", "blurq-review": "1"}
    back = read_confidence(metadata)
    assert back is not None and (back.value, back.review) == (0.457, True)
    assert read_confidence({}) is None
    assert read_confidence({"blurq-confidence": "not a number"}) is None
