"""Static checks of docker/ and infra/k8s/ (no Docker engine or cluster on the dev machines)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def blurq_variables(mapping: dict[str, str]) -> set[str]:
    return {name for name in mapping if name.startswith("BLURQ_")}


def known_variables() -> set[str]:
    return {f"BLURQ_{name.upper()}" for name in Settings.model_fields}


def test_compose_file_is_complete_and_consistent() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "s3", "worker", "flower", "prometheus"} <= set(services)
    for service in services.values():
        build = service.get("build")
        if build:
            assert (ROOT / "docker" / build["context"] / build["dockerfile"]).is_file()
        assert blurq_variables(service.get("environment", {})) <= known_variables()
    redis = services["redis"]["command"][-1]
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["flower:5555"]


COMPOSE = ROOT / "docker" / "compose.yaml"
SECRETS = {
    "REDIS_PASSWORD": "r" * 48,
    "BLURQ_S3_ACCESS_KEY_ID": "blurq",
    "BLURQ_S3_SECRET_ACCESS_KEY": "s" * 48,
    "BLURQ_FLOWER_BASIC_AUTH": "ops:" + "f" * 32,
    "BLURQ_WEBHOOK_SECRET": "w" * 64,
    "BLURQ_TENANTS_FILE": "/srv/blurq/tenants.json",
}
"""Every variable compose must refuse to start without, with values for rendering."""
SECRET_NAME = re.compile(r"PASSWORD|SECRET|AUTH|KEY|TOKEN|TENANTS")
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])([^}]*))?\}")


class Unset(Exception):
    """Raised when a ``${VAR:?message}`` meets an unset variable, as docker compose refuses."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``$$``, ``${V}``, ``${V:-default}``, ``${V:?message}``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, colon, kind, rest = match.groups()
        value = env.get(name)
        missing = value is None or (colon == ":" and value == "")
        if kind == "?" and missing:
            raise Unset(f"{name}: {rest}")
        if kind == "-" and missing:
            return str(rest)
        return value or ""

    return VARIABLE.sub(one, text)


def compose_uses() -> list[tuple[str, str, str]]:
    """(variable, operator, rest) of every ``${...}`` in compose.yaml."""
    return [
        (name, colon + kind, rest)
        for name, colon, kind, rest in VARIABLE.findall(COMPOSE.read_text())
        if name
    ]


def test_compose_has_no_default_secret_and_refuses_to_render_without_each() -> None:
    uses = compose_uses()
    secret_uses = [use for use in uses if SECRET_NAME.search(use[0])]
    assert {name for name, _, _ in secret_uses} == set(SECRETS)
    for name, operator, message in secret_uses:
        assert operator == ":?" and message.strip(), (name, operator)  # never a default
    text = COMPOSE.read_text()
    rendered = interpolate(text, SECRETS)
    for leftover in ("change-me", "admin:", "blurq-secret", "--basic-auth", "--requirepass"):
        assert leftover not in rendered
    for name in SECRETS:
        with pytest.raises(Unset, match=name):
            interpolate(text, {k: v for k, v in SECRETS.items() if k != name})
        with pytest.raises(Unset, match=name):
            interpolate(text, {**SECRETS, name: ""})
    services = yaml.safe_load(rendered)["services"]
    assert services["api"]["environment"]["BLURQ_REDIS_URL"] == f"redis://:{'r' * 48}@redis:6379/0"
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "r" * 48
    assert "requirepass $REDISCLI_AUTH" in services["redis"]["command"][-1]
    assert (
        services["flower"]["environment"]["BLURQ_FLOWER_BASIC_AUTH"]
        == SECRETS["BLURQ_FLOWER_BASIC_AUTH"]
    )
    assert "BLURQ_API_KEYS" not in services["api"]["environment"]  # keys only as hashes in a file
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    jobs = prometheus["scrape_configs"]
    assert not any({"basic_auth", "authorization"} & set(job) for job in jobs)  # no password


def published(bind: dict[str, str]) -> list[str]:
    services = yaml.safe_load(interpolate(COMPOSE.read_text(), {**SECRETS, **bind}))["services"]
    return [port for service in services.values() for port in service.get("ports", [])]


def test_compose_publishes_on_loopback_unless_told_otherwise() -> None:
    ports = published({})
    assert {port.split(":")[1] for port in ports} == {"8000", "5555", "9000", "9001", "9090"}
    for port in ports:
        assert port.count(":") == 2 and port.startswith("127.0.0.1:"), port
    assert all(port.startswith("0.0.0.0:") for port in published({"BLURQ_BIND": "0.0.0.0"}))


def compose_validator() -> Draft202012Validator:
    """The Compose specification's JSON schema, as check-jsonschema vendors it (no network)."""
    text = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text())
    assert schema["title"] == "Compose Specification"
    return Draft202012Validator(schema)


def schema_errors(document: dict[str, Any]) -> list[str]:
    return [error.message for error in compose_validator().iter_errors(document)]


def test_compose_file_follows_the_compose_specification() -> None:
    for bind in ({}, {"BLURQ_BIND": "0.0.0.0"}):
        rendered = yaml.safe_load(interpolate(COMPOSE.read_text(), {**SECRETS, **bind}))
        assert schema_errors(rendered) == []
    # The schema has teeth: a misspelt key and a wrongly typed value are both reported.
    broken = copy.deepcopy(rendered)
    broken["services"]["api"]["healthchek"] = broken["services"]["api"].pop("healthcheck")
    broken["services"]["worker"]["stop_grace_period"] = {"seconds": 330}
    errors = " | ".join(schema_errors(broken))
    assert "'healthchek' was unexpected" in errors and "{'seconds': 330}" in errors, errors


def test_compose_probes_and_graceful_stop() -> None:
    services = yaml.safe_load(interpolate(COMPOSE.read_text(), SECRETS))["services"]
    api_probe = " ".join(services["api"]["healthcheck"]["test"])
    assert "/healthz" in api_probe
    for name in ("worker", "webhooks"):
        command = services[name]["command"]
        heartbeat = command[command.index("--heartbeat-file") + 1]
        assert heartbeat in services[name]["healthcheck"]["test"][1]
    queues = services["worker"]["command"][services["worker"]["command"].index("--queues") + 1]
    assert queues == "interactive,bulk"  # webhooks have their own sender
    limit = Settings().task_time_limit
    assert int(services["worker"]["stop_grace_period"].rstrip("s")) > limit
    rules = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())["rule_files"]
    volumes = [volume.split(":")[:2] for volume in services["prometheus"]["volumes"]]
    mounted = {container: host for host, container in volumes}
    for path in rules:  # the alert rules reach Prometheus from infra/monitoring
        assert (ROOT / "docker" / mounted[path]).resolve() == ROOT / "infra/monitoring/alerts.yaml"


def compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not compose_plugin(),
    reason="the docker compose plugin is not installed (the static checks above still ran)",
)
def test_docker_compose_config_refuses_without_a_secret(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.json"
    tenants.write_text('{"tenants": []}')
    base = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "BLURQ_BIND"}
    argv = ["docker", "compose", "-f", str(COMPOSE), "config", "--format", "json"]
    secrets = {**SECRETS, "BLURQ_TENANTS_FILE": str(tenants)}
    good = subprocess.run(argv, env={**base, **secrets}, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert "0.0.0.0" not in good.stdout.replace('"host_ip": "127.0.0.1"', "")
    for name in SECRETS:
        env = {**base, **{k: v for k, v in secrets.items() if k != name}}
        refused = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and name in refused.stderr


def test_dockerfiles_copy_what_exists() -> None:
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: {source}"
    worker = (ROOT / "docker" / "worker.Dockerfile").read_text()
    assert ".[gpu]" in worker and "blurq models fetch" in worker
    assert 'CMD ["blurq", "worker", "--gpu"]' in worker and "USER blurq" in worker


def test_gpu_image_cuda_matches_the_pinned_wheels() -> None:
    worker = (ROOT / "docker" / "worker.Dockerfile").read_text()
    # The image's table of pins: "pin: cuda M [cudnn N] | what | why".
    pins = re.findall(r"^#\s+pin: cuda (\d+)(?: cudnn (\d+))?\s*\| (\S+) \|", worker, re.M)
    table = {what: (int(cuda), int(cudnn) if cudnn else None) for cuda, cudnn, what in pins}
    (base,) = re.findall(r"^FROM (nvidia/cuda:\S+)", worker, re.M)
    tag = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu24\.04", base)
    assert tag is not None, base
    cuda, cudnn = table.pop(base)
    assert cuda == int(tag.group(1)) and cudnn == 9  # the tag's cudnn is cuDNN 9 since 12.4
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    gpu = extras["optional-dependencies"]["gpu"]
    assert sorted(gpu) == sorted(table)  # exactly the wheels of the table, pinned with ==
    for wheel, (wheel_cuda, wheel_cudnn) in table.items():
        assert wheel_cuda == cuda and wheel_cudnn in (None, cudnn), wheel
    (cupy,) = [wheel for wheel in gpu if wheel.startswith("cupy-cuda")]
    assert cupy.startswith(f"cupy-cuda{cuda}x==")  # CuPy names its CUDA major in its name
    assert any(wheel.startswith("onnxruntime-gpu==") for wheel in gpu)
