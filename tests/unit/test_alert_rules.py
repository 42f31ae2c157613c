"""The alert rules and the dashboard: promtool accepts the rules and their unit tests pass,
and every metric they name is one our services export (scraped from the in-process apps)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.notify.bootstrap import build as build_notify
from services.notify.settings import NotifySettings
from services.payout.bootstrap import build as build_payout
from services.payout.settings import PayoutSettings
from services.review.bootstrap import build as build_review
from services.review.settings import ReviewSettings
from shared.runtime import Service

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "refunds.json"
# A metric name in PromQL: ours start so (Prometheus's own `up` is not matched); a recording
# rule's name has colons (`job:…:…`) and is skipped.
METRIC = re.compile(r"(?<![\w:])((?:refunds|http)_[a-z0-9_]+)(?![\w:])")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: run scripts/ensure-promtool.sh (Debian's prometheus package)",
            pytrace=False,
        )
    return found


def run_promtool(*args: str) -> None:
    done = subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    run_promtool("check", "rules", "alerts.yml")
    run_promtool("check", "config", "prometheus.yml")


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    run_promtool("test", "rules", "alerts.test.yml")


def test_every_alert_has_a_unit_test_and_its_annotations() -> None:
    rules = [
        rule
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules} == fired
    for rule in rules:
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"].startswith(f"docs/observability.md#{anchor} ")
        assert f"### {rule['alert']}" in (ROOT / "docs" / "observability.md").read_text()


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every rule and every dashboard panel's query."""
    for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]


def _service(name: str, tmp_path: Path) -> Service:
    # Consumers on (their lag gauge exists), no loop started: no broker needed.
    quiet: dict[str, Any] = {"env": "test", "data_dir": tmp_path / name, "relay_enabled": False}
    if name == "intake":
        return build_intake(IntakeSettings(**quiet))
    if name == "review":
        return build_review(ReviewSettings(**quiet))
    if name == "payout":
        return build_payout(PayoutSettings(**quiet))
    return build_notify(NotifySettings(keys_from_intake=False, **quiet))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every metric and sample name the four services' /metrics show."""
    names: set[str] = set()
    for name in ("intake", "review", "payout", "notify"):
        service = _service(name, tmp_path_factory.mktemp(name))
        try:
            with TestClient(service.http) as client:
                assert client.get("/healthz").status_code == 200  # some traffic to count
                text = client.get("/metrics").text
        finally:
            service.close()
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
            names.update(sample.name for sample in family.samples)
    return names


def test_the_rules_and_the_dashboard_name_only_metrics_we_export(exported: set[str]) -> None:
    used = {(where, name) for where, expr in expressions() for name in METRIC.findall(expr)}
    assert len({name for _, name in used}) >= 15  # the pattern finds them
    unknown = sorted((where, name) for where, name in used if name not in exported)
    assert unknown == [], f"not exported by any service: {unknown}"


def test_the_fleet_metrics_are_exported(exported: set[str]) -> None:
    for name in (
        "refunds_role_active",
        "refunds_part_healthy",
        "refunds_relay_lag_events",
        "refunds_consumer_lag_records",
        "refunds_payouts",
        "refunds_provider_callbacks_total",
        "refunds_review_cases_overdue",
        "refunds_review_sla_breaches_total",
        "refunds_webhook_endpoints_disabled",
    ):
        assert name in exported, name


def test_the_metric_pattern_skips_recording_rules_and_up() -> None:
    expr = 'job:refunds_payouts_failed:growth30m > 0 and up{job="x"} and refunds_payouts'
    assert METRIC.findall(expr) == ["refunds_payouts"]


def test_the_dashboard_queries_are_promql_and_its_recorded_series_are_recorded(
    tmp_path: Path,
) -> None:
    """promtool parses each panel's query (as a recording rule of a scratch file); the
    recording rules a panel reads are alerts.yml's."""
    dashboard = [expr for where, expr in expressions() if where.startswith("panel ")]
    assert len(dashboard) >= 20
    rules = [{"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(dashboard)]
    scratch = tmp_path / "dashboard.rules.yml"
    scratch.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(scratch))
    recorded = {
        rule["record"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    read = {name for expr in dashboard for name in re.findall(r"\bjob:[a-z0-9_:]+", expr)}
    assert read and read <= recorded
