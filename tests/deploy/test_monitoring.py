"""Prometheus' part of the deployment: it scrapes the API with METRICS_TOKEN and evaluates alert rules for
the error rate, p95 latency, TorchServe being down and the disk, on metrics that really exist.

``promtool check rules`` runs when promtool is installed (Debian: ``apt-get install prometheus``); the
rest reads the files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_compose import API_METRICS, DOCKER, PROMETHEUS, ROOT, mounts, services

ALERTS = ROOT / "monitoring" / "alerts.yml"
ENTRYPOINT = DOCKER / "prometheus-entrypoint.sh"
# TorchServe's metrics that the rules may use: its request counters and its host gauges.
TS_METRICS = {"ts_inference_requests_total", "DiskUtilization", "DiskAvailable", "Requests5XX"}
PROMQL_WORDS = {"sum", "rate", "by", "le", "or", "and", "max", "min", "histogram_quantile", "up"}


def rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_alert_rules_cover_errors_latency_torchserve_and_disk() -> None:
    found = rules()

    assert "api_requests_total" in str(found["ApiHighErrorRate"]["expr"])
    assert 'status=~"5.."' in str(found["ApiHighErrorRate"]["expr"])
    assert "histogram_quantile(0.95" in str(found["ApiSlowRequests"]["expr"])
    assert 'up{job="torchserve"} == 0' in str(found["TorchServeDown"]["expr"])
    assert "DiskUtilization" in str(found["DiskAlmostFull"]["expr"])
    for name, rule in found.items():
        assert rule.get("for"), f"{name}: fires on a single evaluation"
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert rule["annotations"]["summary"], name


def test_alert_expressions_use_metrics_that_exist() -> None:
    known = {f"{m}{suffix}" for m in API_METRICS for suffix in ("", "_bucket", "_sum", "_count")}
    known |= TS_METRICS | {"up"}
    for name, rule in rules().items():
        expr = re.sub(r'"[^"]*"', "", str(rule["expr"]))  # label values
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers and ranges
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) - PROMQL_WORDS
        assert words <= known, f"{name}: unknown metrics {words - known}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_rules_compose_mounts() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {target: (source, ro) for source, target, ro in mounts(services()["prometheus"])}

    for rule_file in config["rule_files"]:
        source, read_only = targets[rule_file]
        assert (ROOT / source).resolve() == ALERTS and read_only


def test_prometheus_scrapes_the_api_with_the_metrics_token() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    api_job = next(job for job in config["scrape_configs"] if job["job_name"] == "api")
    credentials = Path(api_job["authorization"]["credentials_file"])
    prometheus = services()["prometheus"]

    assert api_job["authorization"]["type"] == "Bearer"
    assert f"> {credentials}" in ENTRYPOINT.read_text(), "the entry point writes the file Prometheus reads"
    assert any(str(t).split(":")[0] == str(credentials.parent) for t in prometheus["tmpfs"])
    assert prometheus["environment"]["METRICS_TOKEN"] == services()["api"]["environment"]["METRICS_TOKEN"]
    assert prometheus["entrypoint"][-1] == "/opt/deploy/prometheus-entrypoint.sh"
    assert ("./docker/prometheus-entrypoint.sh", "/opt/deploy/prometheus-entrypoint.sh", True) in mounts(
        prometheus
    )


@pytest.mark.parametrize("token", ["", "CHANGE_ME"])
def test_the_entrypoint_refuses_a_missing_or_placeholder_token(token: str) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "--version"],
        env={"PATH": "/usr/bin:/bin", "METRICS_TOKEN": token},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    assert "METRICS_TOKEN" in result.stderr
