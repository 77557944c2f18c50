"""The dashboards as code: the committed JSON is what the code generates, and every panel
is complete (title, description, unit, $__rate_interval where it rates); latency panels
carry exemplars that the Prometheus datasource links to Jaeger."""

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from orderflow_dashboards import panels
from orderflow_dashboards.__main__ import render, stale
from orderflow_devtools import status

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def _boards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS.glob("*.json")}


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, board in _boards().items() for panel in board["panels"]]


def test_the_committed_files_are_what_the_code_generates() -> None:
    assert stale(DASHBOARDS) == [], "run `make dashboards` and commit the result"
    assert sorted(render()) == sorted(
        str(path.relative_to(DASHBOARDS))
        for path in [*DASHBOARDS.glob("*.json"), *DASHBOARDS.glob("provisioning/*.yaml")]
    )


def test_the_sdk_is_the_grafana_11_6_schema_build() -> None:
    assert version("grafana-foundation-sdk") == "1769699379!11.6.0"
    assert {board["schemaVersion"] for board in _boards().values()} == {41}


def test_the_dashboards_and_their_panel_counts() -> None:
    assert {name: len(board["panels"]) for name, board in _boards().items()} == {
        "service-overview": 10,
        "dapr": 10,
        "resiliency": 6,
        "scaling": 3,
        "load": 4,
    }


def test_every_panel_has_a_title_a_description_and_a_unit() -> None:
    incomplete = [
        (name, panel.get("title"))
        for name, panel in _panels()
        if not panel.get("title")
        or not panel.get("description")
        or not panel["fieldConfig"]["defaults"].get("unit")
    ]
    assert incomplete == []


def test_every_range_in_a_panel_query_is_the_rate_interval() -> None:
    ranges = {
        window
        for _name, panel in _panels()
        for target in panel["targets"]
        for window in re.findall(r"\[([^\]]+)\]", target["expr"])
    }
    assert ranges == {"$__rate_interval"}


def test_latency_panels_carry_exemplars_that_link_to_jaeger() -> None:
    with_exemplars = sorted(
        (name, panel["title"])
        for name, panel in _panels()
        if any(target.get("exemplar") for target in panel["targets"])
    )
    assert with_exemplars == [
        ("load", "Served: storefront latency p50 and p99"),
        ("service-overview", "Fulfillment work per order (p95)"),
        ("service-overview", "Latency p95 by route"),
    ]
    # JSON is YAML: Grafana reads the provisioning file by its .yaml name.
    datasources = json.loads((DASHBOARDS / "provisioning" / "datasources.yaml").read_text())
    by_uid = {source["uid"]: source for source in datasources["datasources"]}
    assert by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "jaeger"}
    ]
    assert by_uid["jaeger"]["type"] == "jaeger"


def test_panels_that_need_kubernetes_or_locust_say_so() -> None:
    # The status command and the live panel test recognise them by these prefixes.
    assert panels.KUBERNETES_ONLY.startswith(status.KUBERNETES_ONLY)
    assert panels.NEEDS_LOCUST_EXPORTER.startswith(status.NEEDS_LOCUST_EXPORTER)
    needs = {
        (query.dashboard, query.panel, query.requires)
        for query in status.panel_queries(DASHBOARDS)
        if query.requires
    }
    assert needs == {
        ("orderflow / Scaling", "Replicas: current, desired, min and max", "kubernetes"),
        ("orderflow / Scaling", "CPU utilisation against the target", "kubernetes"),
        ("orderflow / Scaling", "CPU usage by pod and container", "kubernetes"),
        ("orderflow / Load", "Driven: Locust requests and failures", "locust exporter"),
        ("orderflow / Load", "Driven: Locust users", "locust exporter"),
    }


def test_template_variables_resolve_to_their_all_value() -> None:
    queries = status.panel_queries(DASHBOARDS)
    assert [query.expr for query in queries if "$" in query.expr] == []
    resiliency = next(query for query in queries if query.panel == "Retries by target")
    assert resiliency.expr == (
        "sum by (app_id, target) (rate(dapr_resiliency_activations_total"
        '{app_id=~".*", policy="retry"}[1m]))'
    )
