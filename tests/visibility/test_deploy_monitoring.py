"""The alert rules pass promtool, and every metric the rules and the Grafana dashboard
query is one the app really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).parents[2] / "deploy"
#: Prometheus' own series, not ours.
BUILTIN = {"up"}
METRIC = re.compile(r"\b((?:docdigest|http)_[a-z_]+)\b")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def test_alert_rules_are_valid() -> None:
    promtool = _promtool()
    result = subprocess.run(
        [promtool, "check", "rules", "alerts.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should_and_not_before() -> None:
    promtool = _promtool()
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _exposed_names(metrics_text: str) -> set[str]:
    names = {s.name for f in text_string_to_metric_families(metrics_text) for s in f.samples}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


def _queried(expr: str) -> set[str]:
    return set(METRIC.findall(expr)) - BUILTIN


async def test_rules_and_dashboard_query_only_metrics_that_exist(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/healthz")
    exposed = _exposed_names((await client.get("/metrics")).text)

    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    rule_exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "docdigest.json").read_text())
    panel_exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variable_exprs = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]

    queried = set().union(*(_queried(e) for e in rule_exprs + panel_exprs + variable_exprs))

    assert queried, "no metric found in the rules or the dashboard"
    assert queried - exposed == set()
    assert len(panel_exprs) >= 10
    assert {p["title"] for p in dashboard["panels"]} >= {
        "Throughput by outcome",
        "Failures and retries by function",
        "Job duration p95 by function",
        "Queue depth",
    }
