"""The NetworkPolicies allow exactly the call graph written down here, no edge more or
less, in every kustomize combination; and the evaluator notices when they do not."""

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from orderflow_devtools import runfile
from orderflow_devtools.k8s.network import Edge, Pod, allowed_edges
from orderflow_devtools.k8s.render import Manifest, combinations

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# The app ports, from the registry of services.
APP_PORTS = {app.app_id: app.app_port for app in runfile.load(DEPLOY.parent / "dapr.yaml")}
# Service invocation: the caller's sidecar calls the callee's sidecar on Dapr's internal
# gRPC port. Pub/sub goes through Redis, so it is no direct edge between services.
INVOCATIONS = {("storefront", "inventory"), ("storefront", "payments")}
DAPR_INTERNAL_GRPC = 50002
SIDECAR_METRICS = 9090
# sentry, operator, placement, scheduler (the dapr 1.18.2 Helm chart).
CONTROL_PLANE_PORTS = (50001, 6500, 50005, 50006)


def _peer(name: str, namespace: str, labels: dict[str, str]) -> Pod:
    return Pod(
        name=name,
        namespace=namespace,
        labels=labels,
        namespace_labels={"kubernetes.io/metadata.name": namespace},
        external=True,
    )


# What runs outside our manifests, as the clusters we target label it.
PEERS = [
    _peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    _peer("dapr-control-plane", "dapr-system", {"app.kubernetes.io/part-of": "dapr"}),
    _peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    _peer("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}),
]


def call_graph(services: set[str]) -> set[Edge]:
    """Every connection orderflow needs, for the services that exist."""
    edges = {Edge("grafana", "jaeger", "TCP", 16686)}
    for pod in services | {"redis", "jaeger"}:
        edges |= {Edge(pod, "kube-dns", protocol, 53) for protocol in ("UDP", "TCP")}
    for service in services:
        edges |= {Edge(service, "dapr-control-plane", "TCP", p) for p in CONTROL_PLANE_PORTS}
        edges.add(Edge(service, "redis", "TCP", 6379))
        edges.add(Edge(service, "jaeger", "TCP", 4317))
        edges.add(Edge("prometheus", service, "TCP", APP_PORTS[service]))
        edges.add(Edge("prometheus", service, "TCP", SIDECAR_METRICS))
    edges |= {
        Edge(caller, callee, "TCP", DAPR_INTERNAL_GRPC)
        for caller, callee in INVOCATIONS
        if caller in services and callee in services
    }
    return edges


# With the Locust component: workers drive storefront and inventory (the shopper browses
# stock) and report to the master; every Locust pod resolves names.
LOCUST = {
    Edge("locust-worker", "locust-master", "TCP", 5557),
    Edge("locust-worker", "storefront", "TCP", APP_PORTS["storefront"]),
    Edge("locust-worker", "inventory", "TCP", APP_PORTS["inventory"]),
} | {
    Edge(pod, "kube-dns", protocol, 53)
    for pod in ("locust-master", "locust-worker")
    for protocol in ("UDP", "TCP")
}
WITH_LOCUST = {"base+locust", "overlays/load"}


@pytest.mark.parametrize("combination", combinations(DEPLOY))
def test_policies_allow_exactly_the_call_graph(
    combination: str, rendered: dict[str, list[Manifest]], service_dirs: set[str]
) -> None:
    allowed = allowed_edges(rendered[combination], PEERS)
    expected = call_graph(service_dirs) | (LOCUST if combination in WITH_LOCUST else set())

    assert sorted(map(str, allowed - expected)) == []
    assert sorted(map(str, expected - allowed)) == []


def _policy(objects: list[Manifest], name: str) -> Manifest:
    return next(
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == name
    )


def _without(*names: str) -> Callable[[list[Manifest]], object]:
    def remove(objects: list[Manifest]) -> None:
        for name in names:
            objects.remove(_policy(objects, name))

    return remove


BROKEN: dict[str, tuple[Callable[[list[Manifest]], object], set[str], set[str]]] = {
    # (change, some of the edges it adds, some of the edges it removes)
    "callee that takes calls from anyone": (
        lambda o: _policy(o, "invoked-by-storefront")["spec"]["ingress"][0].pop("from"),
        {"prometheus -> payments TCP/50002", "grafana -> inventory TCP/50002"},
        set(),
    ),
    "caller that may send anywhere": (
        lambda o: _policy(o, "storefront-invokes")["spec"].update(egress=[{}]),
        {"storefront -> prometheus TCP/9090", "storefront -> kube-dns TCP/1"},
        set(),
    ),
    "no default deny and no DNS policy": (
        _without("default-deny", "dns"),
        {"redis -> prometheus TCP/1", "jaeger -> kube-dns TCP/1"},
        {"storefront -> kube-dns UDP/53"},
    ),
    "no DNS policy": (
        _without("dns"),
        set(),
        {"storefront -> kube-dns UDP/53", "redis -> kube-dns TCP/53"},
    ),
    "scrape from our own namespace only": (
        lambda o: _policy(o, "prometheus-scrape")["spec"]["ingress"][0]["from"][0].pop(
            "namespaceSelector"
        ),
        set(),
        {"prometheus -> payments TCP/9090", "prometheus -> fulfillment TCP/8004"},
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_evaluator_notices(
    case: str, rendered: dict[str, list[Manifest]], service_dirs: set[str]
) -> None:
    change, added, removed = BROKEN[case]
    objects = copy.deepcopy(rendered["overlays/prod"])
    change(objects)

    allowed = {str(edge) for edge in allowed_edges(objects, PEERS)}
    expected = {str(edge) for edge in call_graph(service_dirs)}

    assert allowed != expected
    assert added <= allowed - expected
    assert removed <= expected - allowed
