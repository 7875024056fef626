"""infra/monitoring: the Grafana dashboard and the alert rules, checked against what is exported.

Every PromQL expression is parsed (promql-parser, the Prometheus grammar), and every series it
reads must be one that exists: read from a real scrape of the API's collector on a real Redis,
from Flower's own metric definitions, the rules' recorded series, or Prometheus' ``up``. When
promtool is installed (``./dev setup`` puts it in .venv/bin), it checks the rules file and runs
the alert cases in tests/unit/prometheus/alerts.test.yaml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import redis
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from infra.settings import Settings
from infra.status import StatusStore
from producer.http.metrics import registry

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "infra" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
CHILDREN = ("lhs", "rhs", "expr", "args", "param", "vector_selector")
"""The attributes through which promql-parser's nodes hold their sub-expressions."""


def series_read(expression: str) -> set[str]:
    """The metric names an expression selects (promql-parser raises on a syntax error)."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if type(node).__name__ == "VectorSelector":
            found.add(node.name)
        for attribute in CHILDREN:
            child = getattr(node, attribute, None)
            for item in child if isinstance(child, list) else [child]:
                if item is not None:
                    visit(item)

    visit(promql_parser.parse(expression))
    return found


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def panel_expressions() -> dict[str, list[str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in panels}


def exported_by_the_api(settings: Settings, status_store: StatusStore) -> set[str]:
    """Every sample name a real scrape of the API's collector gives (histograms included)."""
    text = generate_latest(registry(status_store, settings.broker)).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def exported_by_flower() -> set[str]:
    from flower.events import get_prometheus_metrics

    names = set()
    for metric in vars(get_prometheus_metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            kind = type(metric).__name__
            name = metric._name
            names |= {
                "Counter": {f"{name}_total"},
                "Histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
            }.get(kind, {name})
    return names


def test_every_expression_parses_and_reads_series_that_exist(
    settings: Settings, status_store: StatusStore
) -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    known = exported_by_the_api(settings, status_store) | exported_by_flower() | recorded | {"up"}
    assert {"blurq_queue_depth", "blurq_webhook_attempts_total", "flower_worker_online"} <= known
    expressions = [rule["expr"] for rule in rules()]
    expressions += [expr for exprs in panel_expressions().values() for expr in exprs]
    for expression in expressions:
        assert series_read(expression) <= known, expression
    with pytest.raises(ValueError):  # the parser has teeth
        series_read("rate(blurq_images_total[5m]")
    assert series_read("max(blurq_typo_total)") - known == {"blurq_typo_total"}


def test_the_alerts_cover_queue_age_failures_and_consumers() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert {"BlurqQueueAge", "BlurqHighFailureRate", "BlurqNoConsumers"} <= set(alerts)
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
    assert "blurq_oldest_queued_batch_seconds" in series_read(alerts["BlurqQueueAge"]["expr"])
    assert "flower_worker_online" in series_read(alerts["BlurqNoConsumers"]["expr"])


def test_the_dashboard_shows_what_operators_need() -> None:
    read = {
        title: set().union(*map(series_read, exprs)) for title, exprs in panel_expressions().items()
    }
    wanted = {
        "Queue depth per lane": "blurq_queue_depth",
        "Images per second": "blurq_images_total",
        "Stage time, median and 95th percentile": "blurq_stage_seconds_bucket",
        "Failure rate": "blurq_images_total",
        "Webhook outcomes": "blurq_webhook_attempts_total",
        "Workers": "flower_worker_online",
    }
    for title, series in wanted.items():
        assert series in read[title], title
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["templating"]["list"][0]["type"] == "datasource"


def promtool() -> str | None:
    local = ROOT / ".venv" / "bin" / "promtool"
    return str(local) if local.exists() else shutil.which("promtool")


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (./dev setup adds it)")
def test_promtool_checks_the_rules_and_runs_the_alert_cases() -> None:
    tool = promtool()
    assert tool is not None
    checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    cases = ROOT / "tests" / "unit" / "prometheus" / "alerts.test.yaml"
    tested = subprocess.run([tool, "test", "rules", str(cases)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_new_series_follow_the_oldest_waiting_batch_and_webhook_outcomes(
    settings: Settings, status_store: StatusStore, redis_client: redis.Redis
) -> None:
    def scrape() -> dict[str, float]:
        text = generate_latest(registry(status_store, settings.broker)).decode()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        return {s.name + json.dumps(s.labels, sort_keys=True): s.value for s in samples}

    assert scrape()["blurq_oldest_queued_batch_seconds{}"] == 0  # nothing waits
    meta = {"output": "s3://out/x/", "params": "{}"}
    assert status_store.create_batch("default/waiting", [("000000", "s3://in/a.jpg")], meta)
    time.sleep(1.1)
    assert 1 <= scrape()["blurq_oldest_queued_batch_seconds{}"] < 60
    status_store.webhook_attempted("default/waiting", "retrying", "503")
    status_store.webhook_attempted("default/waiting", "delivered")
    found = scrape()
    for outcome, count in (("delivered", 1), ("retrying", 1), ("failed", 0)):
        assert found["blurq_webhook_attempts_total" + json.dumps({"outcome": outcome})] == count
