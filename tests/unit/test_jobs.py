"""The job contract: round trip, validation, parameters declared once, confined output keys."""

from __future__ import annotations

import json
from dataclasses import Field, asdict, fields
from typing import Any

import click
import pytest

from infra.errors import InvalidJob
from infra.jobs import (
    QUEUES,
    SCHEMA_VERSION,
    BatchSpec,
    BlurParams,
    Job,
    JobMessage,
    normalise_prefix,
    output_key,
)
from infra.params import limit


def make_job(key: str = "shoot/a.jpg", prefix: str = "out/", **params: object) -> Job:
    return Job("b1", "000001", "in", key, "outb", prefix, BlurParams(**params))  # type: ignore[arg-type]


def make_message() -> JobMessage:
    return JobMessage("shop-a/b1", "000001", "in", "shoot/a.jpg")


def test_a_message_carries_the_image_only_and_its_batch_the_rest() -> None:
    message = json.loads(json.dumps(make_message().encode()))
    assert message == [SCHEMA_VERSION, "shop-a/b1", "000001", "in", "shoot/a.jpg"]
    batch = BatchSpec.of("s3://outb/out", {"strength": 55, "aperture": 6})
    job = JobMessage.decode(message).job(batch)
    assert job == Job(
        "shop-a/b1",
        "000001",
        "in",
        "shoot/a.jpg",
        "outb",
        "out/",
        BlurParams(55, aperture=6),
        tenant="shop-a",
    )


def test_a_message_of_the_previous_schema_is_read_for_its_image() -> None:
    """Messages queued before an upgrade carried the whole job: their image is still found, and
    what the batch shares (and the tenant) comes from the batch, not from the message."""
    old = {"schema": 2, "batch_id": "shop-a/b1", "image_id": "000001", "input_bucket": "in"}
    old |= {"input_key": "shoot/a.jpg", "output_bucket": "elsewhere", "tenant": "x"}
    assert JobMessage.decode(old | {"params": {"strength": 99}}) == make_message()


@pytest.mark.parametrize(
    "message",
    [
        [99, "b", "1", "in", "k"],
        [SCHEMA_VERSION, "", "1", "in", "k"],
        [SCHEMA_VERSION, "b", "1", "in", 5],
        [SCHEMA_VERSION, "b", None, "in", "k"],
        [SCHEMA_VERSION, "b", "1", "in", "k", "extra"],
        [SCHEMA_VERSION, "b", "1", "in"],
        {"schema": SCHEMA_VERSION, "batch_id": "b"},
        {"schema": 2, "batch_id": "b", "image_id": "1", "input_bucket": "in"},
        [],
        "not a job",
    ],
)
def test_invalid_messages_are_refused(message: Any) -> None:
    with pytest.raises(InvalidJob):
        JobMessage.decode(message)


def test_a_refused_message_still_names_its_image_when_it_does() -> None:
    assert JobMessage.names([99, "b", "000001"]) == ("b", "000001")
    assert JobMessage.names({"schema": 1, "batch_id": "b", "image_id": "2"}) == ("b", "2")
    assert JobMessage.names([3, "b"]) is None and JobMessage.names("x") is None


@pytest.mark.parametrize(
    "params",
    [
        {"strength": 0},
        {"strength": 101},
        {"model": "sam"},
        {"format": "gif"},
        {"aperture": 2},
        {"colour": "red"},
        {"depth_suffix": "/../../x.png"},
        {"depth_suffix": ""},
    ],
)
def test_invalid_batch_parameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidJob):
        BatchSpec.of("s3://outb/out/", params)


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
    from infra.params import parse_aperture

    assert parse_aperture("disc") is None and parse_aperture("6") == 6
    for bad in ("hex", "2", "13", "-6", ""):
        with pytest.raises(InvalidJob, match="aperture"):
            parse_aperture(bad)
    assert BlurParams(aperture=6, rotation=30.0).rotation == 30.0
    with pytest.raises(InvalidJob, match="rotation"):
        BlurParams(rotation=400.0)


def _option(command: click.Command, name: str) -> click.Parameter:
    return next(param for param in command.params if param.name == name)


@pytest.mark.parametrize("param", fields(BlurParams), ids=lambda param: param.name)
def test_each_parameter_is_declared_once_for_validation_clis_and_http(param: Field[Any]) -> None:
    """The CLIs' options, the HTTP schema and validation all say what the declaration says."""
    from producer.cli.batches import submit
    from producer.http.schemas import BatchRequest
    from workers.cli import blur

    spec = limit(param)
    schema = BatchRequest.model_json_schema()["$defs"]["Params"]["properties"][param.name]
    accepted = next((kind for kind in schema.get("anyOf", []) if kind["type"] != "null"), schema)
    options = [_option(submit, param.name)]
    if param.name not in ("depth_suffix", "matte_suffix"):  # blur takes --depth, --matte files
        options.append(_option(blur, "fmt" if param.name == "format" else param.name))
    assert schema.get("default") == param.default
    assert schema["description"].startswith(spec.help)
    for option in options:
        assert option.help is not None and option.help.startswith(spec.help)
        if spec.choices:
            assert isinstance(option.type, click.Choice)
            assert tuple(option.type.choices) == tuple(accepted["enum"]) == spec.choices
        elif spec.none is not None:
            assert option.default == spec.none and option.callback is not None
        elif isinstance(param.default, bool):
            assert isinstance(option, click.Option) and option.is_flag
            assert accepted["type"] == "boolean"
        elif spec.low is not None:
            assert isinstance(option.type, click.IntRange | click.FloatRange)
            assert (option.type.min, option.type.max) == (spec.low, spec.high)
    if spec.low is not None:
        assert (accepted["minimum"], accepted["maximum"]) == (spec.low, spec.high)
        for value in (spec.low, spec.high):
            BlurParams(**{param.name: value})
        for value in (spec.low - 1, spec.high + 1):
            with pytest.raises(InvalidJob, match=param.name):
                BlurParams(**{param.name: value})
    if spec.choices:  # errors say the name in words: "strength reference must be one of ..."
        with pytest.raises(InvalidJob, match=param.name.replace("_", " ")):
            BlurParams(**{param.name: "other"})
    if spec.pattern:
        assert accepted["pattern"] == spec.pattern
        with pytest.raises(InvalidJob, match="look like"):
            BlurParams(**{param.name: "a/b"})


def test_the_http_queue_choices_are_the_contracts() -> None:
    from producer.http.schemas import BatchRequest

    queue = BatchRequest.model_json_schema()["properties"]["queue"]["anyOf"][0]
    assert tuple(queue["enum"]) == QUEUES


def test_equal_parameters_compare_equal_after_a_round_trip_through_json() -> None:
    params = BlurParams(strength=40, aperture=6, rotation=15.0, depth_suffix=".d.png")
    assert BlurParams.from_dict(json.loads(json.dumps(asdict(params)))) == params
    assert BlurParams.from_dict({"rotation": 0}) == BlurParams()
    assert BlurParams(strength=41) != BlurParams(strength=40)


def test_new_fields_at_their_default_leave_the_fingerprint_and_output_keys_as_they_were() -> None:
    """Outputs stored before strength_reference, background, save_matte and matte_suffix existed
    stay valid."""
    before = {
        "aperture": None,
        "depth_suffix": None,
        "format": "jpeg",
        "model": "fusion",
        "quality": 92,
        "rotation": 0.0,
        "strength": 30,
    }
    assert BlurParams().fingerprint() == json.dumps(before, separators=(",", ":"))
    keys = {output_key(make_job(), etag="e", model_version="m")}
    for changed in (
        {"strength_reference": "subject"},
        {"background": "white"},
        {"background": "#ffffff"},
        {"save_matte": True},
        {"matte_suffix": ".matte.png"},
    ):
        keys.add(output_key(make_job(**changed), etag="e", model_version="m"))
    assert len(keys) == 6
    explicit = make_job(
        strength_reference="frame", background="blur", save_matte=False, matte_suffix=None
    )
    assert output_key(explicit, etag="e", model_version="m") in keys
