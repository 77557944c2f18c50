"""The Prometheus rules in deploy/monitoring/rules: valid, loaded by the local stack's
config, and unit-tested with `promtool test rules`, where every alert fires in a test and
stays quiet in another. https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/
"""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow_devtools.tools import ensure_debian

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yaml"))
DASHBOARDS = MONITORING.parents[1] / "dashboards"


@pytest.fixture(scope="module")
def promtool() -> Path:
    return ensure_debian("promtool", "prometheus", lambda _message: None)


def _promtool(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *map(str, args)], capture_output=True, text=True, check=False
    )


def _rules(kind: str) -> dict[str, str]:
    """Every rule of ``kind`` ("alert" or "record"): its name and expression."""
    rules: dict[str, str] = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.update({rule[kind]: rule["expr"] for rule in group["rules"] if kind in rule})
    return rules


def _alert_tests() -> list[dict[str, Any]]:
    return [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_the_rules_are_valid(promtool: Path) -> None:
    result = _promtool(promtool, "check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [path.name for path in RULES] == ["alerts.yml", "recording.yml"]
    assert "SUCCESS: 8 rules found" in result.stdout
    assert "SUCCESS: 16 rules found" in result.stdout


def test_the_local_prometheus_loads_every_rule_file(promtool: Path) -> None:
    result = _promtool(promtool, "check", "config", MONITORING / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rule files found" in result.stdout


def test_the_rule_unit_tests_pass(promtool: Path) -> None:
    result = _promtool(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_fires_in_a_test_and_stays_quiet_in_one() -> None:
    alerts = set(_rules("alert"))
    assert alerts == {
        "ErrorBudgetBurnFast",
        "ErrorBudgetBurnSlow",
        "LatencyBudgetBurnFast",
        "LatencyBudgetBurnSlow",
        "CircuitBreakerOpen",
        "DeadLetterTopicGrowing",
        "ScrapeTargetDown",
        "HPAAtMaxReplicas",
    }
    cases = _alert_tests()
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fires == alerts
    assert quiet == alerts


def test_every_recording_rule_is_read_by_an_alert_or_a_dashboard() -> None:
    readers = "\n".join(_rules("alert").values()) + "\n".join(
        path.read_text() for path in DASHBOARDS.glob("*.json")
    )
    unread = [name for name in _rules("record") if name not in readers]
    assert unread == []
