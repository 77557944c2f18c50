"""Every dashboard panel against the live Prometheus, after traffic down every path: each
panel the local stack can answer returns data; each panel documented as Kubernetes-only
or as needing Locust's exporter is valid PromQL (Prometheus parses it) over metric names
that are scraped here, recorded by our rules, or documented by the exporter that
provides them."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import LOOPBACK, PROMETHEUS_PORT
from orderflow_devtools.status import PanelQuery, Prometheus, panel_queries

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
QUERIES = panel_queries(REPO / "dashboards")

# The series the Kubernetes-only panels read, as documented by their exporters.
# https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/horizontalpodautoscaler-metrics.md
# https://github.com/kubernetes/kube-state-metrics/blob/main/docs/metrics/workload/pod-metrics.md
# https://github.com/google/cadvisor/blob/master/docs/storage/prometheus.md
KUBERNETES_METRICS = {
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_min_replicas",
    "kube_horizontalpodautoscaler_spec_target_metric",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_pod_container_resource_requests",
    "container_cpu_usage_seconds_total",
}
# https://github.com/ContainerSolutions/locust_exporter#metrics
LOCUST_METRICS = {
    "locust_requests_current_rps",
    "locust_requests_current_fail_per_sec",
    "locust_users",
}

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label
    matchers, ranges, grouping clauses and function calls are taken out."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
    return {name for name in names if name not in _KEYWORDS}


def test_metric_names_finds_each_series_and_nothing_else() -> None:
    expr = (
        'sum by (app_id, le) (rate(a_bucket{app_id=~".*", le="0.5"}[1m])) / on (app_id)'
        " group_left b:c:rate5m or vector(0) > bool 1"
    )
    assert metric_names(expr) == {"a_bucket", "b:c:rate5m"}


@pytest.fixture(scope="module")
def prometheus(drive: Callable[[], None]) -> Iterator[Prometheus]:
    drive()
    with httpx.Client(timeout=10) as http:
        yield Prometheus(f"http://{LOOPBACK}:{PROMETHEUS_PORT}", http)


def _id(query: PanelQuery) -> str:
    return f"{query.dashboard.removeprefix('orderflow / ')}: {query.panel}"


LOCAL = [query for query in QUERIES if query.requires is None]
ELSEWHERE = [query for query in QUERIES if query.requires is not None]


@pytest.mark.parametrize("query", LOCAL, ids=[_id(query) for query in LOCAL])
def test_every_local_panel_query_returns_data(prometheus: Prometheus, query: PanelQuery) -> None:
    # A scrape every 5 s and rules evaluated every 5 s: data appears within seconds.
    eventually(lambda: prometheus.query(query.expr), f"data for {query.expr}", 30)


@pytest.mark.parametrize("query", ELSEWHERE, ids=[_id(query) for query in ELSEWHERE])
def test_kubernetes_and_locust_panels_are_valid_promql_over_known_metrics(
    prometheus: Prometheus, query: PanelQuery
) -> None:
    # Prometheus 2.42 has no /api/v1/parse_query (2.46+); format_query parses the same way
    # and answers 400 with the parse error. https://prometheus.io/docs/prometheus/latest/querying/api/#formatting-query-expressions
    response = prometheus.http.get(
        f"{prometheus.url}/api/v1/format_query", params={"query": query.expr}
    )
    assert response.status_code == 200, response.text
    known = KUBERNETES_METRICS if query.requires == "kubernetes" else LOCUST_METRICS
    assert metric_names(query.expr) - known == set()
    assert metric_names(query.expr) & known


def test_every_local_panel_reads_scraped_or_recorded_metrics(prometheus: Prometheus) -> None:
    scraped = set(prometheus.get("/api/v1/label/__name__/values"))
    recorded = {
        rule["record"]
        for path in (REPO / "deploy/monitoring/rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    unknown = {
        (query.panel, name)
        for query in LOCAL
        for name in metric_names(query.expr)
        if name not in scraped | recorded
    }
    assert unknown == set()
