"""The pieces every dashboard is made of: the datasource, template variables, and panels
that always carry a title, a description and a unit.

A panel that needs a metric the local stack does not have says so at the start of its
description (:data:`KUBERNETES_ONLY`, :data:`NEEDS_LOCUST_EXPORTER`): readers see it in
Grafana, and the live panel test and ``orderflow status`` check those panels' PromQL and
metric names instead of expecting data.
"""

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
)

# The Prometheus datasource's uid: the one provisioning/datasources.yaml creates, and the
# one kube-prometheus-stack gives its own Prometheus datasource.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
JAEGER_UID = "jaeger"

KUBERNETES_ONLY = "Kubernetes only (kube-state-metrics and cAdvisor)."
NEEDS_LOCUST_EXPORTER = (
    "Needs Locust's Prometheus exporter (github.com/ContainerSolutions/locust_exporter),"
    " which neither the local stack nor the cluster runs by default."
)

# Grafana picks a rate window of at least four scrape intervals for $__rate_interval,
# so a rate never spans fewer than two samples.
# https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/#use-__rate_interval
RATE = "$__rate_interval"


def rate(metric: str, selector: str) -> str:
    """``rate(metric{selector}[$__rate_interval])``."""
    return f"rate({metric}{{{selector}}}[{RATE}])"


Query = tuple[str, str]
"""A PromQL expression and its legend."""


def variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    """A multi-value variable from label values, whose "All" is the regex ``.*``, so
    queries select it with ``=~"$name"``."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(PROMETHEUS)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


def _target(expr: str, legend: str, ref_id: str, *, exemplars: bool) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
    query = query.datasource(PROMETHEUS).range()
    return query.exemplar(True) if exemplars else query


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    exemplars: bool = False,
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel; with ``exemplars`` its points carry trace ids that link to
    Jaeger (the datasource's exemplarTraceIdDestinations)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .height(8)
        .span(width)
        .fill_opacity(10)
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_target(expr, legend, chr(ord("A") + index), exemplars=exemplars))
    return panel


def stat_panel(title: str, description: str, unit: str, query: Query) -> stat.Panel:
    expr, legend = query
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .height(6)
        .span(8)
        .with_target(_target(expr, legend, "A", exemplars=False))
    )


def state_panel(
    title: str, description: str, query: Query, states: dict[int, tuple[str, str]]
) -> statetimeline.Panel:
    """A state timeline: each value of ``query`` shown as the named, coloured state."""
    expr, legend = query
    mapping = ValueMap(
        options={
            str(value): ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(sorted(states.items()))
        }
    )
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .unit("none")
        .datasource(PROMETHEUS)
        .height(8)
        .span(24)
        .mappings([mapping])
        .with_target(_target(expr, legend, "A", exemplars=False))
    )


def new_dashboard(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["orderflow"])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .editable()
    )
