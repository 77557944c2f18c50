"""The monitoring component carries exactly what the local stack runs: the PrometheusRule
holds the groups of deploy/monitoring/rules, and the dashboard ConfigMap holds the JSON in
dashboards/, labelled for Grafana's sidecar. Each check is also shown to bite."""

import json
from pathlib import Path
from typing import Any

import pytest

from orderflow_devtools.k8s.prometheusrule import prometheus_rule, render
from orderflow_devtools.k8s.render import Manifest

REPO = Path(__file__).resolve().parents[2]
WITH_MONITORING = ["base+monitoring", "overlays/dev", "overlays/prod", "overlays/chaos"]


def dashboard_problems(objects: list[Manifest], dashboards: Path) -> list[str]:
    maps = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "orderflow-dashboards"
    ]
    if len(maps) != 1:
        return [f"expected one orderflow-dashboards ConfigMap, found {len(maps)}"]
    config_map = maps[0]
    problems = []
    if config_map["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        problems.append('orderflow-dashboards lacks the label grafana_dashboard: "1"')
    expected = {path.name: json.loads(path.read_text()) for path in dashboards.glob("*.json")}
    found = {name: json.loads(text) for name, text in config_map.get("data", {}).items()}
    if found != expected:
        problems.append(
            f"dashboards differ from dashboards/: {sorted(set(found) ^ set(expected)) or 'content'}"
        )
    return problems


def rule_problems(objects: list[Manifest], rules: Path) -> list[str]:
    found = [o for o in objects if o["kind"] == "PrometheusRule"]
    expected = prometheus_rule(rules)
    if [o.get("spec") for o in found] != [expected["spec"]]:
        return ["the PrometheusRule does not hold exactly the groups of deploy/monitoring/rules"]
    return []


@pytest.mark.parametrize("combination", WITH_MONITORING)
def test_the_cluster_gets_the_local_rules_and_dashboards(
    rendered: dict[str, list[Manifest]], combination: str
) -> None:
    objects = rendered[combination]

    assert rule_problems(objects, REPO / "deploy/monitoring/rules") == []
    assert dashboard_problems(objects, REPO / "dashboards") == []


def test_the_committed_prometheusrule_is_current() -> None:
    committed = (REPO / "deploy/components/monitoring/prometheusrule.yaml").read_text()

    assert committed == render(REPO / "deploy/monitoring/rules"), (
        "run `uv run python -m orderflow_devtools.k8s.prometheusrule`"
    )


def _edited(objects: list[Manifest], kind: str, change: Any) -> list[Manifest]:
    copy: list[Manifest] = json.loads(json.dumps(objects))
    for obj in copy:
        if obj["kind"] == kind:
            change(obj)
    return copy


def test_the_checks_bite(rendered: dict[str, list[Manifest]]) -> None:
    objects = rendered["overlays/dev"]
    rules, dashboards = REPO / "deploy/monitoring/rules", REPO / "dashboards"

    stale_rule = _edited(objects, "PrometheusRule", lambda o: o["spec"]["groups"].pop())
    unlabelled = _edited(objects, "ConfigMap", lambda o: o["metadata"]["labels"].clear())
    stale_json = _edited(objects, "ConfigMap", lambda o: o["data"].update({"dapr.json": "{}"}))

    assert rule_problems(stale_rule, rules) == [
        "the PrometheusRule does not hold exactly the groups of deploy/monitoring/rules"
    ]
    assert dashboard_problems(unlabelled, dashboards) == [
        'orderflow-dashboards lacks the label grafana_dashboard: "1"'
    ]
    assert dashboard_problems(stale_json, dashboards) == [
        "dashboards differ from dashboards/: content"
    ]
