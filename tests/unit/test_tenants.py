"""Tenants: the file and its errors, keys and roles, prefixes, confinement on both sides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from infra.errors import Forbidden, InvalidJob
from infra.jobs import BlurParams, Job
from infra.settings import Settings
from infra.storage import S3Uri
from infra.tenants import (
    DEFAULT_TENANT,
    FORBIDDEN,
    Role,
    Tenants,
    allowances,
    dump,
    key_hash,
    load,
    new_key,
    parse,
    qualify,
    split,
)
from producer import inputs
from producer.cli import main
from producer.cli.services import _check_keys
from workers.pipeline import confine

SUBMIT, VIEW, OTHER = new_key(), new_key(), new_key()


def entry(name: str = "shop-a", **changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name,
        "keys": [
            {"sha256": key_hash(SUBMIT), "role": "submit"},
            {"sha256": key_hash(VIEW), "role": "view"},
        ],
        "inputs": ["s3://shop/a/"],
        "outputs": ["s3://shop-results/"],
        "limits": {"images_per_batch": 10, "outstanding_images": 20, "submits_per_minute": 3},
    }
    found.update(changes)
    return found


def two() -> Tenants:
    other = entry("shop-b", keys=[{"sha256": key_hash(OTHER), "role": "submit"}])
    other.update(inputs=["s3://b-photos/"], outputs=["s3://b-results/"])
    return parse({"tenants": [entry(), other]})


def test_the_issue_shape_parses_and_dumps_back() -> None:
    tenants = two()
    a = tenants.by_name["shop-a"]
    assert a.limits.images_per_batch == 10 and a.inputs == ("s3://shop/a/",)
    assert parse(dump(tenants)).by_name == tenants.by_name
    assert SUBMIT not in json.dumps(dump(tenants)), "the file holds hashes only"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([], "must be"),
        ({"tenants": [entry(name="Shop/A")]}, "tenant names"),
        ({"tenants": [entry(), entry()]}, "unique"),
        ({"tenants": [entry(), entry("shop-b")]}, "one tenant only"),
        ({"tenants": [entry(keys=[{"sha256": "abc", "role": "submit"}])]}, "hex sha256"),
        ({"tenants": [entry(keys=[{"sha256": key_hash("x" * 30), "role": "admin"}])]}, "role"),
        ({"tenants": [entry(limits={"images_per_batch": 0})]}, "positive"),
        ({"tenants": [entry(limits={"gpus": 1})]}, "limits"),
        ({"tenants": [entry(inputs=["s3://shop/a"])]}, "end with '/'"),
        ({"tenants": [entry(inputs=["s3://"])]}, "s3://bucket/"),
        ({"tenants": [entry(outputs=[])]}, "non-empty"),
    ],
)
def test_a_bad_file_is_refused_naming_the_problem(data: Any, says: str) -> None:
    with pytest.raises(InvalidJob, match=says):
        parse(data)


def test_keys_name_a_tenant_and_a_role() -> None:
    tenants = two()
    submit, view = tenants.authenticate(SUBMIT), tenants.authenticate(VIEW)
    assert submit is not None and submit.tenant.name == "shop-a" and submit.may_submit
    assert view is not None and view.role is Role.VIEW and not view.may_submit
    other = tenants.authenticate(OTHER)
    assert other is not None and other.tenant.name == "shop-b"
    assert tenants.authenticate("") is None and tenants.authenticate(new_key()) is None


def test_prefixes_end_at_a_slash() -> None:
    a = two().by_name["shop-a"]
    assert a.may_read(S3Uri("shop", "a/x.jpg")) and a.may_read(S3Uri("shop", "a/deep/y.png"))
    assert not a.may_read(S3Uri("shop", "a-other/x.jpg"))
    assert not a.may_read(S3Uri("shop", "a")) and not a.may_read(S3Uri("shopx", "a/x.jpg"))
    assert not a.may_read(S3Uri("shop-results", "x.jpg"))  # an output prefix is not an input
    assert a.may_write(S3Uri("shop-results", "out/")) and not a.may_write(S3Uri("shop", "a/"))


def test_single_tenant_mode_is_one_tenant_allowed_everywhere(tmp_path: Path) -> None:
    tenants = load(Settings(api_keys=f"{SUBMIT},{OTHER}", tenants_file=""))
    found = tenants.authenticate(OTHER)
    assert found is not None and found.tenant.name == DEFAULT_TENANT and found.may_submit
    assert found.tenant.may_read(S3Uri("any", "x.jpg"))
    assert found.tenant.may_write(S3Uri("other", ""))


def test_weak_keys_and_two_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match="at least 24"):
        load(Settings(api_keys="a", tenants_file=""))
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [entry()]}))
    with pytest.raises(InvalidJob, match="not both"):
        load(Settings(api_keys=SUBMIT, tenants_file=str(path)))
    assert load(Settings(api_keys="", tenants_file=str(path))).authenticate(SUBMIT) is not None
    path.write_text("{not json")
    with pytest.raises(InvalidJob, match="cannot read the tenants file"):
        load(Settings(api_keys="", tenants_file=str(path)))


@pytest.mark.parametrize(
    ("keys", "says"),
    [("a", "at least 24"), ("", "no API key configured"), (SUBMIT, "not both")],
)
def test_the_api_refuses_to_start_without_one_good_key_source(
    tmp_path: Path, keys: str, says: str
) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [entry()]}))
    tenants_file = str(path) if says == "not both" else ""
    with pytest.raises(click.ClickException, match=says):
        _check_keys(Settings(api_keys=keys, tenants_file=tenants_file))
    _check_keys(Settings(api_keys="", tenants_file=str(path)))  # one good source: starts


def test_batch_ids_live_in_their_tenants_namespace() -> None:
    assert qualify("shop-a", "spring-01") == "shop-a/spring-01"
    assert qualify(DEFAULT_TENANT, "spring-01") == "spring-01"  # single-tenant ids unchanged
    assert qualify("shop-a", "spring-01") != qualify("shop-b", "spring-01")
    for tenant in ("shop-a", DEFAULT_TENANT):
        assert split(qualify(tenant, "spring-01")) == (tenant, "spring-01")


def forbidden_text(error: pytest.ExceptionInfo[Forbidden]) -> str:
    return str(error.value).split(" ", 2)[2]  # "<what> <uri> <the one text>"


@pytest.mark.parametrize(
    "request_",
    [
        {"uris": ["s3://b-photos/secret.jpg"]},
        {"uris": ["s3://shop/a/ok.jpg", "s3://shop/a-other/x.jpg"]},
        {"prefix": "s3://b-photos/"},
        {"prefix": "s3://shop/"},  # wider than the tenant's prefix
        {"manifest": "s3://b-photos/list.txt"},
        {"uris": ["s3://shop/a/ok.jpg"], "output": "s3://b-results/"},
    ],
)
def test_the_producer_refuses_places_outside_the_tenant(request_: dict[str, Any]) -> None:
    a = two().by_name["shop-a"]
    output = S3Uri.parse(request_.pop("output", "s3://shop-results/out/"))
    given = {"uris": None, "prefix": None, "manifest": None, **request_}
    with pytest.raises(Forbidden) as error:
        inputs.confine(a, output, **given)
    assert forbidden_text(error) == FORBIDDEN


def test_manifest_lines_and_depth_maps_are_confined_too() -> None:
    a = two().by_name["shop-a"]
    output = S3Uri("shop-results", "out/")
    inputs.confine_found(a, [S3Uri("shop", "a/x.jpg")], ".depth.png", output)
    with pytest.raises(Forbidden, match=r"input s3://b-photos/x\.jpg"):
        inputs.confine_found(a, [S3Uri("b-photos", "x.jpg")], None, output)
    # A depth map sits next to its input (the suffix holds no "/"), so it is confined with it.
    with pytest.raises(InvalidJob, match="depth suffix"):
        BlurParams(depth_suffix="/../../b-photos/x.png")


def test_overlapping_input_and_output_are_refused() -> None:
    everywhere = load(Settings(api_keys=SUBMIT, tenants_file="")).by_name[DEFAULT_TENANT]
    for prefix, output in [
        ("s3://pics/in/", "s3://pics/in/out/"),
        ("s3://pics/in/x/", "s3://pics/in/"),
    ]:
        with pytest.raises(InvalidJob, match="overlap"):
            inputs.confine(everywhere, S3Uri.parse(output), None, prefix, None)
    with pytest.raises(InvalidJob, match="inside the output prefix"):
        inputs.confine_found(everywhere, [S3Uri("pics", "out/x.jpg")], None, S3Uri("pics", "out/"))
    with pytest.raises(InvalidJob, match="overlap"):  # S3 lists "in" as a plain string prefix
        inputs.confine(everywhere, S3Uri("pics", "in-out/"), None, "s3://pics/in", None)
    inputs.confine(everywhere, S3Uri("pics", "out/"), None, "s3://pics/in/", None)
    inputs.confine(everywhere, S3Uri("pics", "in-out/"), None, "s3://pics/in/", None)
    found = [S3Uri("pics", ".."), S3Uri("pics", "a/../out/x.jpg"), S3Uri("pics", "outer.jpg")]
    inputs.confine_found(everywhere, found, None, S3Uri("pics", "out/"))  # literal keys: outside


def job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "batch_id": "shop-a/spring-01",
        "image_id": "000000",
        "input_bucket": "shop",
        "input_key": "a/x.jpg",
        "output_bucket": "shop-results",
        "output_prefix": "out/",
        "tenant": "shop-a",
        **changes,
    }
    return Job(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"input_bucket": "b-photos"},
        {"input_key": "a-other/x.jpg"},
        {"output_bucket": "b-results"},
        {"params": BlurParams(depth_suffix="..b-photos")},  # stays in the bucket: allowed below
        {"tenant": "shop-c", "batch_id": "shop-c/spring-01"},  # unknown tenant
        {"batch_id": "shop-b/spring-01"},  # another tenant's batch
        {"batch_id": "spring-01"},  # the default tenant's batch
    ],
)
def test_the_worker_checks_the_job_again(changes: dict[str, Any]) -> None:
    tenants = two()
    confine(job(), tenants)
    if "params" in changes:
        confine(job(**changes), tenants)  # a depth suffix cannot leave the input's folder
        return
    with pytest.raises(Forbidden, match=r"^forbidden: "):
        confine(job(**changes), tenants)


def test_workers_read_allowances_without_keys(tmp_path: Path) -> None:
    everywhere = allowances(Settings(api_keys="short", tenants_file=""))
    assert everywhere.by_name[DEFAULT_TENANT].may_write(S3Uri("any", "x/"))


def test_tenants_add_prints_a_key_once_and_writes_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "tenants.json"
    runner = CliRunner()
    prefixes = ["--input", "s3://aaa/in/", "--output", "s3://aaa/out/"]
    made = runner.invoke(main, ["tenants", "add", "shop-a", *prefixes, "--file", str(path)])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert len(key) >= 43 and key not in path.read_text()
    view = runner.invoke(main, ["tenants", "add", "shop-a", "--role", "view", "--file", str(path)])
    view_key = view.stdout.strip()
    tenants = load(Settings(api_keys="", tenants_file=str(path)))
    found, reader = tenants.authenticate(key), tenants.authenticate(view_key)
    assert found is not None and found.tenant.name == "shop-a" and found.may_submit
    assert reader is not None and reader.tenant.name == "shop-a" and not reader.may_submit
    assert found.tenant.inputs == ("s3://aaa/in/",) and found.tenant.outputs == ("s3://aaa/out/",)
    listed = runner.invoke(main, ["tenants", "list", "--file", str(path)])
    assert listed.exit_code == 0 and "s3://aaa/in/" in listed.output and " view " in listed.output
    assert key not in listed.output and key_hash(key)[:12] in listed.output
    assert key_hash(key) not in listed.output  # a prefix of the hash only


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["shop-b"], "needs --input and --output"),
        (["shop-b", "--input", "s3://bbb", "--output", "s3://bbb/out/"], "end with '/'"),
        (["Shop/B", "--input", "s3://bbb/", "--output", "s3://bbb/out/"], "tenant names"),
    ],
)
def test_tenants_add_refuses_what_the_file_may_not_hold(
    tmp_path: Path, args: list[str], says: str
) -> None:
    path = tmp_path / "tenants.json"
    result = CliRunner().invoke(main, ["tenants", "add", *args, "--file", str(path)])
    assert result.exit_code != 0 and says in result.output and not path.exists()


def test_the_cli_escapes_control_characters_from_s3_keys() -> None:
    from producer.cli.batches import printable

    assert printable("in/\x1b[2J\x07ünï写真.jpg\tx") == "in/\\x1b[2J\\x07ünï写真.jpg\\tx"


def test_tenants_webhook_secret_prints_the_tenants_own_derived_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra.settings import get_settings
    from infra.webhooks import secret_for

    monkeypatch.setenv("BLURQ_WEBHOOK_SECRET", "master-secret-for-the-test")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        a = runner.invoke(main, ["tenants", "webhook-secret", "shop-a"])
        b = runner.invoke(main, ["tenants", "webhook-secret", "shop-b"])
        bad = runner.invoke(main, ["tenants", "webhook-secret", "Shop/A"])
    finally:
        get_settings.cache_clear()
    assert a.exit_code == 0 and a.stdout.strip() == secret_for(
        "master-secret-for-the-test", "shop-a"
    )
    assert b.stdout.strip() not in (a.stdout.strip(), "master-secret-for-the-test")
    assert bad.exit_code != 0
