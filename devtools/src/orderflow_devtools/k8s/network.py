"""Which connections the NetworkPolicies of one build allow, as a set of edges.

A connection from pod A to port P of pod B is allowed when A may send it (A is selected
by no Egress policy, or one of those policies' egress rules admits B and P) and B may
receive it (the same for Ingress). Pods outside our manifests (DNS, the Dapr control
plane, Prometheus) are given as peers; their own namespaces' policies are not ours, so
they are taken to allow everything. Enumerating every pod pair over every port that any
pod or policy names, plus one port nothing names, turns "allows too much" into extra
edges. https://kubernetes.io/docs/concepts/services-networking/network-policies/
"""

from dataclasses import dataclass, field
from typing import Any

from orderflow_devtools.k8s.checks import dapr_enabled, pod_templates
from orderflow_devtools.k8s.render import Manifest

# The ports the Dapr injector gives the sidecar container, by name.
# https://docs.dapr.io/reference/arguments-annotations-overview/
SIDECAR_PORTS = {
    "dapr-http": 3500,
    "dapr-grpc": 50001,
    "dapr-internal": 50002,
    "dapr-metrics": 9090,
}
# A port that no pod or policy names: allowed only by a rule that allows any port.
ANY_OTHER_PORT = 1
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    namespace_labels: dict[str, str]
    # Named container ports; numbers are matched directly.
    ports: dict[str, int] = field(default_factory=dict)
    # A peer outside our manifests: its own namespace's policies are not ours to check.
    external: bool = False


@dataclass(frozen=True, order=True)
class Edge:
    source: str
    destination: str
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination} {self.protocol}/{self.port}"


class UnsupportedPolicyError(Exception):
    """A policy uses a feature this evaluator does not model (ipBlock)."""


def pods_of(objects: list[Manifest]) -> list[Pod]:
    """One pod per workload, as its template describes it, with the sidecar's ports."""
    namespaces = {
        obj["metadata"]["name"]: obj["metadata"].get("labels", {})
        for obj in objects
        if obj.get("kind") == "Namespace"
    }
    pods = []
    for workload, template in pod_templates(objects):
        namespace = workload["metadata"].get("namespace", "default")
        ports = {
            port["name"]: port["containerPort"]
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
            if "name" in port
        }
        if dapr_enabled(template):
            ports |= SIDECAR_PORTS
        pods.append(
            Pod(
                name=workload["metadata"]["name"],
                namespace=namespace,
                labels=template["metadata"].get("labels", {}),
                namespace_labels={
                    **namespaces.get(namespace, {}),
                    "kubernetes.io/metadata.name": namespace,
                },
                ports=ports,
            )
        )
    return pods


def allowed_edges(objects: list[Manifest], peers: list[Pod]) -> set[Edge]:
    policies = [obj for obj in objects if obj.get("kind") == "NetworkPolicy"]
    ours = pods_of(objects)
    everyone = ours + peers
    ports = {ANY_OTHER_PORT}
    for pod in everyone:
        ports |= set(pod.ports.values())
    for policy in policies:
        for rule in _rules(policy, "ingress") + _rules(policy, "egress"):
            ports |= {p["port"] for p in rule.get("ports", []) if isinstance(p.get("port"), int)}
    return {
        Edge(source.name, destination.name, protocol, port)
        for source in everyone
        for destination in everyone
        if source is not destination and not (source.external and destination.external)
        for protocol in PROTOCOLS
        for port in sorted(ports)
        if _may(policies, "egress", source, destination, (protocol, port))
        and _may(policies, "ingress", destination, source, (protocol, port))
    }


def _may(
    policies: list[Manifest], direction: str, pod: Pod, other: Pod, port: tuple[str, int]
) -> bool:
    """Whether ``pod``'s policies let it send to (egress) or receive from (ingress)
    ``other`` on ``port`` (protocol, number) of the destination."""
    if pod.external:
        return True
    destination = other if direction == "egress" else pod
    selecting = [
        policy
        for policy in policies
        if policy["metadata"].get("namespace", "default") == pod.namespace
        and _selects(policy["spec"]["podSelector"], pod.labels)
        and direction.capitalize() in _policy_types(policy)
    ]
    if not selecting:
        return True
    return any(
        _peer_matches(rule, direction, policy, other) and _port_matches(rule, destination, *port)
        for policy in selecting
        for rule in _rules(policy, direction)
    )


def _policy_types(policy: Manifest) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]


def _rules(policy: Manifest, direction: str) -> list[Manifest]:
    return list(policy["spec"].get(direction) or [])


def _peer_matches(rule: Manifest, direction: str, policy: Manifest, other: Pod) -> bool:
    peers = rule.get("to" if direction == "egress" else "from")
    if not peers:
        return True
    own_namespace = policy["metadata"].get("namespace", "default")
    for peer in peers:
        if "ipBlock" in peer:
            raise UnsupportedPolicyError(f"NetworkPolicy/{policy['metadata']['name']}: ipBlock")
        namespace_selector = peer.get("namespaceSelector")
        if namespace_selector is None:
            namespace_ok = other.namespace == own_namespace
        else:
            namespace_ok = _selects(namespace_selector, other.namespace_labels)
        pod_selector = peer.get("podSelector")
        if namespace_ok and (pod_selector is None or _selects(pod_selector, other.labels)):
            return True
    return False


def _port_matches(rule: Manifest, destination: Pod, protocol: str, port: int) -> bool:
    rule_ports = rule.get("ports")
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted: Any = rule_port.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            wanted = destination.ports.get(wanted)
            if wanted is None:
                continue
        if wanted <= port <= rule_port.get("endPort", wanted):
            return True
    return False


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions must all hold ({} selects all)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not holds:
            return False
    return True
