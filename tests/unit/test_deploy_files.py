"""Static checks of docker/ and infra/k8s/ (no Docker engine or cluster on the dev machines)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

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
    assert "--appendonly" in services["redis"]["command"]
    assert "noeviction" in services["redis"]["command"]
    assert "--basic-auth" in services["flower"]["command"]
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["flower:5555"]


def test_dockerfiles_copy_what_exists() -> None:
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: {source}"
    worker = (ROOT / "docker" / "worker.Dockerfile").read_text()
    assert ".[gpu]" in worker and "blurq models fetch" in worker


def test_kubernetes_manifests_parse_and_use_known_settings() -> None:
    documents = list(yaml.safe_load_all((ROOT / "infra" / "k8s" / "blurq.yaml").read_text()))
    kinds = {document["kind"] for document in documents}
    assert {"ConfigMap", "Deployment", "ScaledObject", "Service"} <= kinds
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    assert blurq_variables(config) <= known_variables()
    scaler = next(d for d in documents if d["kind"] == "ScaledObject")
    lists = {trigger["metadata"]["listName"] for trigger in scaler["spec"]["triggers"]}
    assert lists == {"bulk", "interactive"}
    for trigger in scaler["spec"]["triggers"]:
        assert re.fullmatch(r"[A-Z_]+", trigger["metadata"]["addressFromEnv"])
        assert trigger["metadata"]["addressFromEnv"] in config
