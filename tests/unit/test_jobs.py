"""The job contract: round trip, validation, deterministic and confined output keys."""

from __future__ import annotations

import pytest

from infra.errors import InvalidJob
from infra.jobs import SCHEMA_VERSION, BlurParams, Job, normalise_prefix, output_key


def make_job(key: str = "shoot/a.jpg", prefix: str = "out/", **params: object) -> Job:
    return Job("b1", "000001", "in", key, "outb", prefix, BlurParams(**params))  # type: ignore[arg-type]


def test_round_trip_is_plain_json_data() -> None:
    import json

    job = make_job(strength=55, aperture=6, format="png")
    message = json.loads(json.dumps(job.encode()))
    assert message["schema"] == SCHEMA_VERSION
    assert Job.decode(message) == job


@pytest.mark.parametrize(
    "change",
    [
        {"schema": 99},
        {"batch_id": ""},
        {"params": {"strength": 0}},
        {"params": {"strength": 101}},
        {"params": {"model": "sam"}},
        {"params": {"format": "gif"}},
        {"params": {"aperture": 2}},
        {"params": {"colour": "red"}},
        {"params": {"depth_suffix": "/../../x.png"}},
        {"params": {"depth_suffix": ""}},
        {"extra": 1},
    ],
)
def test_invalid_messages_are_refused(change: dict[str, object]) -> None:
    message = {**make_job().encode(), **change}
    with pytest.raises(InvalidJob):
        Job.decode(message)


def test_non_dict_message_is_refused() -> None:
    with pytest.raises(InvalidJob, match="object"):
        Job.decode(["not", "a", "job"])


def test_output_key_is_deterministic_and_depends_on_everything() -> None:
    job = make_job()
    key = output_key(job, etag="e1", model_version="m1")
    assert key == output_key(make_job(), etag="e1", model_version="m1")
    assert key.startswith("out/shoot/a.") and key.endswith(".jpg")
    others = {
        output_key(job, etag="e2", model_version="m1"),
        output_key(job, etag="e1", model_version="m2"),
        output_key(make_job(strength=31), etag="e1", model_version="m1"),
        output_key(make_job(key="shoot/b.jpg"), etag="e1", model_version="m1"),
    }
    assert key not in others and len(others) == 4


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/abs/../../x.jpg",
        "a/./../b.jpg",
        "..",
        "dir/../../../up.png",
        "weird name ü?.jpg",
        "....//....//x.jpg",
    ],
)
def test_output_key_never_leaves_the_output_prefix(key: str) -> None:
    produced = output_key(make_job(key=key, prefix="batches/7/"), etag="e", model_version="m")
    assert produced.startswith("batches/7/")
    parts = produced.split("/")
    assert ".." not in parts and "." not in parts and "" not in parts


def test_prefix_is_normalised() -> None:
    assert normalise_prefix("/a//b/../c") == "a/b/c/"
    assert normalise_prefix("") == ""


def test_aperture_text_and_rotation() -> None:
    from infra.jobs import parse_aperture

    assert parse_aperture("disc") is None and parse_aperture("6") == 6
    for bad in ("hex", "2", "13", "-6", ""):
        with pytest.raises(InvalidJob, match="aperture"):
            parse_aperture(bad)
    assert BlurParams(aperture=6, rotation=30.0).rotation == 30.0
    with pytest.raises(InvalidJob, match="rotation"):
        BlurParams(rotation=400.0)
