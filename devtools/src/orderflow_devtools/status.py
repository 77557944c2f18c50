"""``orderflow status``: where each entity of the specification stands, from live signals.

Each entity climbs its states in order; it stands at the last state whose signal holds
while every earlier one holds too, and the table says which signal put it there and what
keeps it from the next state:

- Monitoring stack: not deployed → deployed (Prometheus ready, rules loaded) → collecting
  metrics (every scrape target up, every app scraped) → visualizing data. Grafana does not
  run in the local stack, so "visualizing data" means what a Grafana on this Prometheus
  would show: every dashboard panel's query returns data, except the panels documented as
  Kubernetes-only or as needing Locust's exporter.
- Dapr observability: disabled → configured (the Configuration samples traces and turns
  metrics on) → active tracing (Jaeger holds a trace that crosses apps) → reporting metrics
  (every sidecar is scraped and reports service invocation and pub/sub).
- Resilience policies: not configured → policies defined (a Resiliency resource) →
  applied to services (every sidecar loaded it: ``dapr_resiliency_loaded``) → active
  protection (a policy acted in the last 5 minutes, or a breaker is open).
- HPA: not configured → definition created (deploy/) → applied → actively scaling
  (replicas above the minimum or changing). Where the local control plane runs
  (`orderflow cluster up`, its kubeconfig given), both come from its API server, whose HPA
  controller is real while its node is simulated (kwok); elsewhere from kube-state-metrics
  in Prometheus. The local stack alone has no Kubernetes, so "applied" says it is not
  available there, and why.

The dashboards' queries are read from the committed JSON (dashboards/*.json), which the
live panel test reads the same way.
"""

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from orderflow_devtools import cluster, resources, runfile

# What a panel's description starts with when it needs metrics the local stack lacks
# (orderflow_dashboards.panels writes them).
KUBERNETES_ONLY = "Kubernetes only"
NEEDS_LOCUST_EXPORTER = "Needs Locust's Prometheus exporter"
# $__rate_interval is at least four scrape intervals (5 s here); a minute is safely above.
RATE_INTERVAL = "1m"
RECENT = "5m"

Signal = tuple[bool, str]
Probe = Callable[[], Signal]


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str
    requires: str | None
    """``"kubernetes"`` or ``"locust exporter"`` when the local stack cannot answer it."""


def panel_queries(dashboards: Path, rate_interval: str = RATE_INTERVAL) -> list[PanelQuery]:
    """Every query of every panel in ``dashboards``/*.json, with ``$__rate_interval`` and
    the template variables resolved as Grafana would with "All" selected."""
    queries: list[PanelQuery] = []
    for path in sorted(dashboards.glob("*.json")):
        board = json.loads(path.read_text())
        values = {"__rate_interval": rate_interval}
        for item in board.get("templating", {}).get("list", []):
            values[item["name"]] = item.get("allValue") or ".*"
        for panel in _panels(board.get("panels", [])):
            description = panel.get("description", "")
            requires = (
                "kubernetes"
                if description.startswith(KUBERNETES_ONLY)
                else "locust exporter"
                if description.startswith(NEEDS_LOCUST_EXPORTER)
                else None
            )
            queries.extend(
                PanelQuery(
                    board["title"], panel["title"], _resolve(target["expr"], values), requires
                )
                for target in panel.get("targets", [])
            )
    return queries


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def _resolve(expr: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


class Prometheus:
    """The few Prometheus HTTP API calls the status needs.
    https://prometheus.io/docs/prometheus/latest/querying/api/"""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.http = http

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(f"{self.url}{path}", params=params)
        return response.raise_for_status().json()["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])


@dataclass(frozen=True)
class Placement:
    entity: str
    states: tuple[str, ...]
    state: str
    signal: str
    next: str | None
    """Why the entity is not in the next state (None at the last state)."""

    @property
    def step(self) -> int:
        return self.states.index(self.state) + 1


def place(entity: str, states: Sequence[str], probes: Sequence[Probe]) -> Placement:
    """Climb ``states`` while each probe holds (``probes[i]`` leads to ``states[i + 1]``)."""
    signal = ""
    for index, probe in enumerate(probes):
        try:
            ok, message = probe()
        except httpx.HTTPError as error:
            ok, message = False, f"{type(error).__name__}: {error}"
        if not ok:
            return Placement(
                entity,
                tuple(states),
                states[index],
                signal or message,
                f"{states[index + 1]}: {message}",
            )
        signal = message
    return Placement(entity, tuple(states), states[-1], signal, None)


class Status:
    """The live signals of one orderflow: its run file (and the deploy/ folder beside it),
    its Prometheus and its Jaeger."""

    def __init__(
        self,
        run_file: Path,
        prometheus_url: str,
        jaeger_url: str,
        http: httpx.Client,
        kubeconfig: Path | None = None,
    ) -> None:
        self.repo = run_file.resolve().parent
        self.apps = runfile.load(run_file)
        self.documents = resources.load(
            self.apps[0].resources_path, self.apps[0].config_file
        ).documents
        self.prometheus = Prometheus(prometheus_url, http)
        self.jaeger_url = jaeger_url.rstrip("/")
        self.http = http
        self.kubeconfig = kubeconfig
        self.app_ids = sorted(app.app_id for app in self.apps)
        # Where requests enter, so where traces start.
        self.entry = "storefront" if "storefront" in self.app_ids else self.app_ids[0]

    def placements(self) -> list[Placement]:
        return [self.monitoring(), self.dapr_observability(), self.resilience(), self.hpa()]

    # Monitoring stack

    def monitoring(self) -> Placement:
        return place(
            "Monitoring stack",
            ("not deployed", "deployed", "collecting metrics", "visualizing data"),
            (self._prometheus_ready, self._targets_up, self._panels_have_data),
        )

    def _prometheus_ready(self) -> Signal:
        url = f"{self.prometheus.url}/-/ready"
        try:
            ready = self.http.get(url).status_code == httpx.codes.OK
        except httpx.TransportError:
            return False, f"Prometheus does not answer at {url}"
        if not ready:
            return False, f"Prometheus at {url} is not ready"
        groups = self.prometheus.get("/api/v1/rules")["groups"]
        alerts = sum(rule["type"] == "alerting" for group in groups for rule in group["rules"])
        rules = sum(len(group["rules"]) for group in groups)
        return True, (
            f"Prometheus ready at {self.prometheus.url}; {len(groups)} rule groups"
            f" ({alerts} alerts, {rules - alerts} recording rules) loaded"
        )

    def _targets_up(self) -> Signal:
        targets = self.prometheus.get("/api/v1/targets", state="active")["activeTargets"]
        down = [
            f"{target['labels'].get('job')}/{target['labels'].get('app_id')}"
            f" ({target.get('lastError') or target['health']})"
            for target in targets
            if target["health"] != "up"
        ]
        if down:
            return False, f"{len(down)} of {len(targets)} scrape targets not up: {', '.join(down)}"
        jobs: dict[str, set[str]] = {}
        for target in targets:
            labels = target["labels"]
            jobs.setdefault(labels["job"], set()).add(labels.get("app_id", ""))
        unscraped = [
            f"{job} lacks {', '.join(sorted(set(self.app_ids) - app_ids))}"
            for job, app_ids in sorted(jobs.items())
            if not set(self.app_ids) <= app_ids
        ]
        if not jobs or unscraped:
            return False, f"not every app is scraped: {'; '.join(unscraped) or 'no targets'}"
        per_job = ", ".join(f"{job} {len(ids)}" for job, ids in sorted(jobs.items()))
        return True, f"all {len(targets)} scrape targets up ({per_job})"

    def _panels_have_data(self) -> Signal:
        queries = panel_queries(self.repo / "dashboards")
        local = [query for query in queries if query.requires is None]
        empty = [
            f"{query.dashboard} / {query.panel}"
            for query in local
            if not self.prometheus.query(query.expr)
        ]
        if not local or empty:
            return False, (
                f"{len(empty)} of {len(local)} panel queries return no data:"
                f" {', '.join(sorted(set(empty))) or 'no dashboards'}"
                " (Grafana does not run locally; this is what it would show)"
            )
        skipped = len(queries) - len(local)
        return True, (
            f"all {len(local)} panel queries return data ({skipped} Kubernetes- or"
            " Locust-only queries not expected here; Grafana itself does not run locally)"
        )

    # Dapr observability

    def dapr_observability(self) -> Placement:
        return place(
            "Dapr observability",
            ("disabled", "configured", "active tracing", "reporting metrics"),
            (self._configured, self._traces, self._sidecar_metrics),
        )

    def _configured(self) -> Signal:
        configuration = next(doc for doc in self.documents if doc["kind"] == "Configuration")
        spec = configuration["spec"]
        tracing = spec.get("tracing") or {}
        rate = float(tracing.get("samplingRate") or 0)
        exporter = (tracing.get("otel") or tracing.get("zipkin") or {}).get("endpointAddress")
        metrics = (spec.get("metrics") or {}).get("enabled", True)
        where = f"Configuration {configuration['metadata']['name']}"
        if rate <= 0 or not exporter or not metrics:
            return False, (
                f"{where}: samplingRate {rate:g}, exporter {exporter or 'none'},"
                f" metrics {'on' if metrics else 'off'}"
            )
        return True, f"{where}: samplingRate {rate:g} to {exporter}, metrics on"

    def _traces(self) -> Signal:
        # Spans from one service alone (a health check) prove little: a trace that crosses
        # services proves that trace context travels through Dapr.
        # https://www.jaegertracing.io/docs/latest/apis/ (the query service's HTTP API)
        url = f"{self.jaeger_url}/api/traces"
        params = {"service": self.entry, "lookback": "1h", "limit": "50"}
        try:
            traces = self.http.get(url, params=params).raise_for_status().json()["data"] or []
        except httpx.TransportError:
            return False, f"Jaeger does not answer at {self.jaeger_url}"
        widest: tuple[int, str, list[str]] = (0, "", [])
        for trace in traces:
            services = sorted(
                {p["serviceName"] for p in trace["processes"].values()} & set(self.app_ids)
            )
            widest = max(widest, (len(services), trace["traceID"], services))
        count, trace_id, services = widest
        if count < 2:
            return False, f"Jaeger holds no trace from {self.entry} that crosses into another app"
        return True, f"Jaeger trace {trace_id} crosses {count} apps: {', '.join(services)}"

    def _sidecar_metrics(self) -> Signal:
        reporting = {
            sample["metric"]["app_id"]
            for sample in self.prometheus.query('up{job="dapr-sidecars"} == 1')
        }
        if set(self.app_ids) - reporting:
            silent = ", ".join(sorted(set(self.app_ids) - reporting))
            return False, f"sidecars not scraped: {silent}"
        invocations = self.prometheus.query("dapr_runtime_service_invocation_req_sent_total")
        deliveries = self.prometheus.query("dapr_component_pubsub_ingress_count")
        if not invocations or not deliveries:
            return False, (
                f"no {'service invocation' if not invocations else 'pub/sub'} metrics yet"
                " (dapr_runtime_service_invocation_req_sent_total,"
                " dapr_component_pubsub_ingress_count)"
            )
        pairs = sorted(
            {f"{s['metric']['app_id']}→{s['metric']['dst_app_id']}" for s in invocations}
        )
        topics = sorted({s["metric"]["topic"] for s in deliveries})
        return True, (
            f"all {len(reporting)} sidecars report: invocations {', '.join(pairs)};"
            f" pub/sub deliveries on {', '.join(topics)}"
        )

    # Resilience policies

    def resilience(self) -> Placement:
        return place(
            "Resilience policies",
            ("not configured", "policies defined", "applied to services", "active protection"),
            (self._policies, self._loaded, self._protecting),
        )

    def _policies(self) -> Signal:
        found = [doc for doc in self.documents if doc["kind"] == "Resiliency"]
        if not found:
            return False, f"no Resiliency resource in {self.apps[0].resources_path}"
        kinds: dict[str, int] = {}
        targets = 0
        for doc in found:
            for kind, policies in (doc["spec"].get("policies") or {}).items():
                kinds[kind] = kinds.get(kind, 0) + len(policies or {})
            for group in (doc["spec"].get("targets") or {}).values():
                targets += len(group or {})
        names = ", ".join(doc["metadata"]["name"] for doc in found)
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return True, f"Resiliency {names}: {counts} on {targets} targets"

    def _loaded(self) -> Signal:
        loaded = {
            sample["metric"]["app_id"]
            for sample in self.prometheus.query("dapr_resiliency_loaded > 0")
        }
        missing = sorted(set(self.app_ids) - loaded)
        if missing:
            return False, f"dapr_resiliency_loaded is not above 0 on {', '.join(missing)}"
        return True, f"dapr_resiliency_loaded > 0 on all {len(self.app_ids)} sidecars"

    def _protecting(self) -> Signal:
        # increase() misses a labelled counter's first appearance (a burst of retries can
        # create the series at 3), so a series new within the window counts in full.
        metric = "dapr_resiliency_activations_total"
        acted = self.prometheus.query(
            f"sum by (policy, target) (increase({metric}[{RECENT}])) > 0"
            f" or sum by (policy, target) ({metric} unless {metric} offset {RECENT})"
        )
        opened = self.prometheus.query(
            'dapr_resiliency_cb_state{policy="circuitbreaker", status="open"} == 1'
        )
        if not acted and not opened:
            return False, f"no policy acted in the last {RECENT} ({metric}) and no breaker is open"
        parts = [
            f"{s['metric'].get('policy')} → {s['metric'].get('target')}"
            for s in sorted(acted, key=lambda s: sorted(s["metric"].items()))
        ]
        parts += [f"breaker open → {s['metric']['target']}" for s in opened]
        return True, f"policies acted in the last {RECENT}: {', '.join(parts)}"

    # Horizontal Pod Autoscaler

    def hpa(self) -> Placement:
        return place(
            "HPA",
            ("not configured", "definition created", "applied", "actively scaling"),
            (self._hpa_defined, self._hpa_applied, self._hpa_scaling),
        )

    def _hpa_defined(self) -> Signal:
        found: list[str] = []
        for path in sorted((self.repo / "deploy").rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "HorizontalPodAutoscaler":
                    spec = doc["spec"]
                    found.append(
                        f"{doc['metadata']['name']} {spec.get('minReplicas', 1)}-"
                        f"{spec['maxReplicas']} ({path.relative_to(self.repo)})"
                    )
        if not found:
            return False, "no HorizontalPodAutoscaler in deploy/"
        return True, f"{len(found)} HPAs defined: {', '.join(found)}"

    def _cluster_hpas(self) -> list[dict[str, Any]] | None:
        """The HPAs in the local control plane, or None where it does not run."""
        if self.kubeconfig is None or not self.kubeconfig.is_file():
            return None
        try:
            with cluster.api_client(self.kubeconfig) as api:
                response = api.get("/apis/autoscaling/v2/horizontalpodautoscalers")
        except httpx.TransportError:
            return None
        items: list[dict[str, Any]] = response.raise_for_status().json()["items"]
        return items

    def _hpa_applied(self) -> Signal:
        hpas = self._cluster_hpas()
        if hpas is not None:
            if not hpas:
                return False, f"no HPA in the local control plane ({cluster.SIMULATED})"
            listed = ", ".join(
                f"{h['metadata']['name']} {h['spec'].get('minReplicas', 1)}-"
                f"{h['spec']['maxReplicas']}"
                for h in sorted(hpas, key=lambda h: h["metadata"]["name"])
            )
            return True, (
                f"the local control plane's HPA controller evaluates {len(hpas)} HPAs:"
                f" {listed} ({cluster.SIMULATED})"
            )
        applied = self.prometheus.query("kube_horizontalpodautoscaler_spec_max_replicas")
        if not applied:
            return False, (
                "not available in the local stack: it runs processes, not Kubernetes, so no"
                " HPA is applied and kube-state-metrics reports none"
                " (kube_horizontalpodautoscaler_*); run `skaffold dev` (docs/kubernetes.md)"
            )
        names = sorted(s["metric"]["horizontalpodautoscaler"] for s in applied)
        return True, f"kube-state-metrics reports {len(names)} HPAs: {', '.join(names)}"

    def _hpa_scaling(self) -> Signal:
        hpas = self._cluster_hpas()
        if hpas is not None:
            moving = [
                f"{h['metadata']['name']} {status.get('currentReplicas', 0)}/"
                f"{h['spec']['maxReplicas']} replicas"
                for h in sorted(hpas, key=lambda h: h["metadata"]["name"])
                if (status := h.get("status", {})).get("currentReplicas", 0)
                > h["spec"].get("minReplicas", 1)
                or (
                    "desiredReplicas" in status
                    and status["desiredReplicas"] != status.get("currentReplicas")
                )
            ]
            if not moving:
                return False, "every HPA at its minimum, none changing"
            return True, f"scaled above the minimum or changing: {', '.join(moving)}"
        scaling = self.prometheus.query(
            "kube_horizontalpodautoscaler_status_current_replicas"
            " > on (namespace, horizontalpodautoscaler)"
            " kube_horizontalpodautoscaler_spec_min_replicas"
            " or on (namespace, horizontalpodautoscaler)"
            f" changes(kube_horizontalpodautoscaler_status_desired_replicas[{RECENT}]) > 0"
        )
        if not scaling:
            return False, f"every HPA at its minimum, unchanged for {RECENT}"
        names = sorted({s["metric"]["horizontalpodautoscaler"] for s in scaling})
        return True, f"scaled above the minimum or changing: {', '.join(names)}"


def render(placements: Sequence[Placement]) -> str:
    """The table: entity, state (and its place in the order), the signal that put it
    there, and on a second line what keeps it from the next state."""
    width = max(len(p.entity) for p in placements) + 2
    state_width = max(len(f"{p.state} ({p.step}/{len(p.states)})") for p in placements) + 2
    lines = [f"{'ENTITY':<{width}}{'STATE':<{state_width}}SIGNAL"]
    for p in placements:
        state = f"{p.state} ({p.step}/{len(p.states)})"
        lines.append(f"{p.entity:<{width}}{state:<{state_width}}{p.signal}")
        if p.next:
            lines.append(f"{'':<{width + state_width}}next, {p.next}")
    return "\n".join(lines)
