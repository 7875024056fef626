"""infra/k8s rendered with ``kubectl kustomize`` and every object checked against its schema.

Built-in kinds are validated strictly (unknown fields are errors) with kubernetes-validate, which
bundles the Kubernetes JSON schemas; KEDA's ScaledObject and TriggerAuthentication against the
schemas in tests/unit/schemas (from KEDA's CRDs, made strict the same way: make_keda.py). No
cluster is needed. Then what the schemas cannot say: security contexts, probes, graceful stops,
settings, secrets, scaling per lane and network policies, per overlay.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("gpu", "cpu", "local")
OVERLAY_IDS = [f"overlays-{name}" for name in OVERLAYS]
"""Test ids: a bare ``gpu`` would read as the gpu marker (tests/conftest.py deselects those)."""
KUBERNETES_VERSION = "1.30.0"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
SECRET_SETTINGS = {"redis_url", "broker_url", "s3_access_key_id", "s3_secret_access_key"}
SECRET_SETTINGS |= {"api_keys", "api_key", "webhook_secret", "flower_basic_auth", "metrics_token"}
"""Settings that carry a secret: only ever from a Secret, never in the ConfigMap."""
Object = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Object, ...]:
    """Every object of overlays/<overlay>, as ``kubectl kustomize`` renders it."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render infra/k8s (it bundles kustomize)"
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return tuple(yaml.safe_load_all(done.stdout))


@cache
def keda_validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"keda-{kind.lower()}.json").read_text()))


def schema_errors(item: Object) -> list[str]:
    """What the object's schema finds wrong with it (strict: unknown fields included)."""
    if item["apiVersion"].startswith("keda.sh/"):
        return [error.message for error in keda_validator(item["kind"]).iter_errors(item)]
    try:
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [error.message]
    return []


def of_kind(items: tuple[Object, ...], kind: str) -> list[Object]:
    return [item for item in items if item["kind"] == kind]


def named(items: tuple[Object, ...], kind: str, name: str) -> Object:
    (found,) = [item for item in of_kind(items, kind) if item["metadata"]["name"] == name]
    return found


def pod(deployment: Object) -> Object:
    spec: Object = deployment["spec"]["template"]["spec"]
    return spec


def blurq_deployments(items: tuple[Object, ...]) -> list[Object]:
    return [d for d in of_kind(items, "Deployment") if d["metadata"]["name"].startswith("blurq-")]


def config(items: tuple[Object, ...]) -> dict[str, str]:
    (found,) = of_kind(items, "ConfigMap")
    data: dict[str, str] = found["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_every_object_follows_its_schema(overlay: str) -> None:
    items = render(overlay)
    assert {"Deployment", "Service", "ScaledObject", "NetworkPolicy"} <= {i["kind"] for i in items}
    for item in items:
        assert schema_errors(item) == [], (item["kind"], item["metadata"]["name"])


def test_the_schemas_catch_misspelt_fields_and_wrong_types() -> None:
    items = render("gpu")
    for spoil in (
        lambda spec: spec.update(minReplicasCount=1),
        lambda spec: spec["triggers"][0]["metadata"].update(listLength=20),  # KEDA wants strings
    ):
        scaler = copy.deepcopy(of_kind(items, "ScaledObject")[0])
        spoil(scaler["spec"])
        assert schema_errors(scaler)
    deployment = copy.deepcopy(blurq_deployments(items)[0])
    pod(deployment)["containers"][0]["livenesProbe"] = {}
    assert schema_errors(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_pods_run_as_non_root_on_read_only_roots_with_requests_and_probes(overlay: str) -> None:
    for deployment in blurq_deployments(render(overlay)):
        spec, name = pod(deployment), deployment["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "livenessProbe" in container, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name  # the one writable place


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_settings_come_from_the_config_map_and_secrets_only_from_secrets(overlay: str) -> None:
    items = render(overlay)
    data = config(items)
    known = {f"BLURQ_{name.upper()}" for name in Settings.model_fields}
    secret = {f"BLURQ_{name.upper()}" for name in SECRET_SETTINGS}
    assert {key for key in data if key.startswith("BLURQ_")} <= known - secret
    assert not of_kind(items, "Secret")  # referenced, never rendered
    for deployment in blurq_deployments(items):
        for container in pod(deployment)["containers"]:
            for variable in container.get("env", []):
                assert variable["name"] in known | {"POD_NAME", "HOME"}, variable  # no typo
                if variable["name"] in secret | {"REDIS_PASSWORD"}:
                    assert "value" not in variable, variable
                    reference = variable["valueFrom"]["secretKeyRef"]
                    assert reference == {**reference, "name": "blurq-secrets"}
    Settings(**{k.removeprefix("BLURQ_").lower(): v for k, v in data.items() if k in known})


def test_every_setting_is_listed_in_the_config_file() -> None:
    text = (K8S / "base" / "blurq.env").read_text()
    for name in Settings.model_fields:
        assert f"BLURQ_{name.upper()}" in text, name


def worker_deployments(overlay: str) -> list[Object]:
    return [
        d
        for d in blurq_deployments(render(overlay))
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_workers_finish_the_image_in_hand_and_prove_they_consume(overlay: str) -> None:
    limit = int(config(render(overlay))["BLURQ_TASK_TIME_LIMIT"])
    assert len(worker_deployments(overlay)) == 2  # one per lane
    for deployment in [
        *worker_deployments(overlay),
        named(render(overlay), "Deployment", "blurq-webhooks"),
    ]:
        spec = pod(deployment)
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "worker":
            assert spec["terminationGracePeriodSeconds"] > limit
        (container,) = spec["containers"]
        heartbeat = container["args"][container["args"].index("--heartbeat-file") + 1]
        assert heartbeat in container["livenessProbe"]["exec"]["command"][-1]
        assert "QUEUE" not in " ".join(container["args"])


def heartbeat_probe_passes(heartbeat: Path) -> bool:
    """The workers' liveness probe as overlays/gpu renders it, run on this file instead."""
    (worker, *_) = worker_deployments("gpu")
    command = pod(worker)["containers"][0]["livenessProbe"]["exec"]["command"][-1]
    done = subprocess.run(["sh", "-c", command.replace("/tmp/blurq/heartbeat", str(heartbeat))])
    return done.returncode == 0


def test_the_heartbeat_probe_fails_on_a_stale_or_missing_file(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    assert not heartbeat_probe_passes(heartbeat)
    heartbeat.touch()
    assert heartbeat_probe_passes(heartbeat)
    os.utime(heartbeat, (time.time() - 61,) * 2)
    assert not heartbeat_probe_passes(heartbeat)


def test_gpu_workers_ask_for_a_gpu_and_cpu_workers_do_not() -> None:
    for deployment in worker_deployments("gpu"):
        spec = pod(deployment)
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert spec["nodeSelector"] and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert spec["containers"][0]["image"].split("/")[-1].startswith("blurq-worker-gpu")
        assert spec["containers"][0]["args"][:3] == ["blurq", "worker", "--gpu"]
    for overlay in ("cpu", "local"):
        for deployment in worker_deployments(overlay):
            assert "nvidia" not in json.dumps(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_each_lane_scales_on_its_own_queue_interactive_faster(overlay: str) -> None:
    items = render(overlay)
    deployments = {d["metadata"]["name"]: d for d in worker_deployments(overlay)}
    env = config(items)
    auths = {a["metadata"]["name"] for a in of_kind(items, "TriggerAuthentication")}
    lanes: dict[str, Object] = {}
    for scaler in of_kind(items, "ScaledObject"):
        target = deployments[scaler["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = scaler["spec"]["triggers"]
        args = pod(target)["containers"][0]["args"]
        assert trigger["metadata"]["listName"] in args[args.index("--queues") + 1].split(",")
        assert trigger["metadata"]["addressFromEnv"] in env
        assert trigger["authenticationRef"]["name"] in auths
        lanes[trigger["metadata"]["listName"]] = scaler["spec"]
    interactive, bulk = lanes["interactive"], lanes["bulk"]
    assert interactive["minReplicaCount"] >= 1 and bulk["minReplicaCount"] == 0
    assert interactive["pollingInterval"] < bulk["pollingInterval"]
    assert int(interactive["triggers"][0]["metadata"]["listLength"]) < int(
        bulk["triggers"][0]["metadata"]["listLength"]
    )


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_disruption_budgets_cover_the_api_and_every_lane(overlay: str) -> None:
    items = render(overlay)
    covered = set()
    for budget in of_kind(items, "PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"]
        for deployment in blurq_deployments(items):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            if wanted.items() <= labels.items():
                covered.add(deployment["metadata"]["name"])
    names = {d["metadata"]["name"] for d in blurq_deployments(items)}
    assert names - covered == {"blurq-flower"}  # one replica: a budget would block drains


def egress_ports(items: tuple[Object, ...], labels: dict[str, str]) -> set[int | None]:
    """The ports of every egress rule of the policies that select a pod with these labels."""
    found: set[int | None] = set()
    for policy in of_kind(items, "NetworkPolicy"):
        if selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get("egress", []):
                found |= {port["port"] for port in rule.get("ports", [])} or {None}
    return found


def selects(selector: Object, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    expressions = selector.get("matchExpressions", [])
    return all(labels.get(e["key"]) in e["values"] for e in expressions if e["operator"] == "In")


@pytest.mark.parametrize("overlay", OVERLAYS, ids=OVERLAY_IDS)
def test_workers_reach_redis_and_s3_only_and_webhooks_the_internet(overlay: str) -> None:
    items = render(overlay)
    for deployment in blurq_deployments(items):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        denied = [p for p in of_kind(items, "NetworkPolicy") if not p["spec"].get("egress")]
        assert any(selects(p["spec"]["podSelector"], labels) for p in denied)  # default deny
        ports = egress_ports(items, labels)
        component = labels["app.kubernetes.io/component"]
        if component == "worker":
            assert ports == {53, 6379, 6380, 443, 9000}  # DNS, Redis, S3 (AWS; MinIO)
        if component == "webhooks":
            assert None in ports  # any port, to the public internet only:
    (internet,) = [
        p for p in of_kind(items, "NetworkPolicy") if "internet" in p["metadata"]["name"]
    ]
    blocks = [peer["ipBlock"] for peer in internet["spec"]["egress"][0]["to"]]
    assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(blocks[0]["except"])


def test_flower_takes_its_credentials_from_the_secret_never_argv() -> None:
    flower = pod(named(render("gpu"), "Deployment", "blurq-flower"))["containers"][0]
    assert not any(re.search("auth|password", arg) for arg in flower["args"])
    (auth,) = [e for e in flower["env"] if e["name"] == "BLURQ_FLOWER_BASIC_AUTH"]
    assert auth["valueFrom"]["secretKeyRef"]["key"] == "BLURQ_FLOWER_BASIC_AUTH"


def test_the_api_is_probed_on_redis_and_served_over_tls() -> None:
    items = render("gpu")
    api = pod(named(items, "Deployment", "blurq-api"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (ingress,) = of_kind(items, "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"]
    assert not of_kind(render("local"), "Ingress")  # port-forward on a laptop
