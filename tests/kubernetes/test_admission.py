"""Every way we ship deploy/ goes through the real API server's admission: server-side
apply (strict field validation, the CRD schemas of Dapr and the Prometheus operator), the
Dapr sidecar injector's webhook, and Pod Security "restricted", which the orderflow
namespace enforces. Every Deployment becomes Available with its daprd injected; a pod that
breaks the standard, and objects that break a schema, are refused with the server's own
words."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow_devtools import runfile
from orderflow_devtools.cluster import ClusterError, LocalCluster
from orderflow_devtools.k8s.render import build_combination, combinations

pytestmark = pytest.mark.kubernetes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NAMESPACE = "orderflow"


def _kustomization(combination: str, scratch: Path, kustomize: Path) -> Path:
    """The directory to `kubectl apply -k`: the overlay itself, or for base+<component>
    the throwaway kustomization that build_combination writes."""
    if "+" not in combination:
        return DEPLOY / combination
    build_combination(kustomize, DEPLOY, combination, scratch)
    return scratch / combination


@pytest.mark.parametrize("combination", combinations(DEPLOY))
def test_every_combination_is_admitted_with_its_sidecars(
    combination: str, fresh: LocalCluster, kustomize: Path, tmp_path: Path
) -> None:
    directory = _kustomization(combination, tmp_path, kustomize)

    fresh.kubectl("apply", "--server-side", "-k", str(directory))
    deployments = fresh.rolled_out(NAMESPACE)

    pods = fresh.get("pods", f"--namespace={NAMESPACE}")["items"]
    expected = {d["metadata"]["name"]: d["spec"]["replicas"] for d in deployments}
    running: dict[str, int] = {}
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
        owner = pod["metadata"]["labels"].get("app.kubernetes.io/name", "")
        running[owner] = running.get(owner, 0) + 1
    dapr_apps = {
        d["metadata"]["name"]
        for d in deployments
        if d["spec"]["template"]["metadata"].get("annotations", {}).get("dapr.io/enabled") == "true"
    }
    assert dapr_apps == {app.app_id for app in runfile.load(REPO / "dapr.yaml")}
    for pod in pods:
        name = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        containers = [c["name"] for c in pod["spec"]["containers"]]
        if name in dapr_apps:
            assert containers == ["app", "daprd"], pod["metadata"]["name"]
            daprd = pod["spec"]["containers"][1]
            assert daprd["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert daprd["image"] == "ghcr.io/dapr/daprd:1.18.2"
            args = daprd["args"]
            assert args[args.index("--app-id") + 1] == name
        else:
            assert "daprd" not in containers
    assert sum(running.values()) == sum(expected.values())


def _pod_from(combination: str, kustomize: Path, tmp_path: Path, name: str) -> dict[str, Any]:
    """A bare Pod with the pod template of Deployment ``name`` in ``combination``."""
    objects = build_combination(kustomize, DEPLOY, combination, tmp_path)
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name
    )
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": f"{name}-by-hand", "namespace": NAMESPACE},
        "spec": template["spec"],
    }


@pytest.fixture(scope="module")
def prod(cluster: LocalCluster) -> LocalCluster:
    """The prod overlay, applied once for the tests that try to break it."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s")
    cluster.kubectl("apply", "--server-side", "-k", str(DEPLOY / "overlays/prod"))
    cluster.rolled_out(NAMESPACE)
    return cluster


def _create(cluster: LocalCluster, obj: dict[str, Any], *, dry_run: bool = False) -> str:
    """Create ``obj``; return the API server's refusal (kubectl's last line), or ""."""
    args = ["create", "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    try:
        cluster.kubectl(*args, stdin=json.dumps(obj))
    except ClusterError as refused:
        return str(refused)
    return ""


def test_a_pod_as_the_template_says_is_admitted(
    prod: LocalCluster, kustomize: Path, tmp_path: Path
) -> None:
    pod = _pod_from("overlays/prod", kustomize, tmp_path, "payments")

    assert _create(prod, pod, dry_run=True) == ""


Change = Callable[[dict[str, Any]], object]
BROKEN_PODS: dict[str, tuple[Change, str]] = {
    "privilege escalation allowed": (
        lambda p: p["spec"]["containers"][0]["securityContext"].update(
            allowPrivilegeEscalation=True
        ),
        'violates PodSecurity "restricted:v1.34": allowPrivilegeEscalation != false'
        ' (container "app" must set securityContext.allowPrivilegeEscalation=false)',
    ),
    "root allowed": (
        lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"),
        'violates PodSecurity "restricted:v1.34": runAsNonRoot != true',
    ),
    "a hostPath volume": (
        lambda p: p["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var"}}),
        'violates PodSecurity "restricted:v1.34": restricted volume types'
        ' (volume "host" uses restricted volume type "hostPath")',
    ),
    "an added capability": (
        lambda p: p["spec"]["containers"][0]["securityContext"]["capabilities"].update(
            add=["NET_ADMIN"]
        ),
        'violates PodSecurity "restricted:v1.34": unrestricted capabilities'
        ' (container "app" must not include "NET_ADMIN" in securityContext.capabilities.add)',
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PODS))
def test_pod_security_refuses_a_broken_pod(
    case: str, prod: LocalCluster, kustomize: Path, tmp_path: Path
) -> None:
    change, expected = BROKEN_PODS[case]
    pod = _pod_from("overlays/prod", kustomize, tmp_path, "payments")
    change(pod)

    refused = _create(prod, pod)

    assert f'pods "payments-by-hand" is forbidden: {expected}' in refused
    assert (
        prod.kubectl(
            "get", "pods", "--namespace", NAMESPACE, "--ignore-not-found", "payments-by-hand"
        )
        == ""
    )


def _prod_object(kind: str, name: str, kustomize: Path, tmp_path: Path) -> dict[str, Any]:
    objects = build_combination(kustomize, DEPLOY, "overlays/prod", tmp_path)
    found: dict[str, Any] = next(
        o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
    )
    found["metadata"]["name"] = f"{name}-broken"
    return found


BROKEN_OBJECTS: dict[str, tuple[str, str, Change, str]] = {
    # (kind, name, change, what the API server says)
    "misspelled Deployment field": (
        "Deployment", "payments", lambda d: d["spec"].update(replica=2),
        'strict decoding error: unknown field "spec.replica"',
    ),
    "Service port given as a name": (
        "Service", "storefront", lambda s: s["spec"]["ports"][0].update(port="http"),
        'cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32',
    ),
    "misspelled PodMonitor field": (
        "PodMonitor", "orderflow-apps",
        lambda p: p["spec"].update(podMetricEndpoints=p["spec"].pop("podMetricsEndpoints")),
        'unknown field "spec.podMetricEndpoints"',
    ),
    "Dapr Component metadata as a map": (
        "Component", "pubsub", lambda c: c["spec"].update(metadata={"redisHost": "x"}),
        'strict decoding error: unknown field "spec.metadata.redisHost"',
    ),
    "Dapr retry field the CRD does not have": (
        "Resiliency", "orderflow",
        lambda r: r["spec"]["policies"]["retries"]["invoke-5xx"].update(initialInterval="1s"),
        'unknown field "spec.policies.retries.invoke-5xx.initialInterval"',
    ),
    "HPA metric type unknown to autoscaling/v2": (
        "HorizontalPodAutoscaler", "storefront",
        lambda h: h["spec"]["metrics"][0].update(containerResources={}),
        'unknown field "spec.metrics[0].containerResources"',
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN_OBJECTS))
def test_the_api_server_refuses_a_broken_object(
    case: str, prod: LocalCluster, kustomize: Path, tmp_path: Path
) -> None:
    kind, name, change, expected = BROKEN_OBJECTS[case]
    obj = _prod_object(kind, name, kustomize, tmp_path)
    assert _create(prod, obj, dry_run=True) == ""
    change(obj)

    refused = _create(prod, obj, dry_run=True)

    assert expected in refused, refused


def test_kubectl_apply_k_works_as_users_type_it(prod: LocalCluster) -> None:
    """No --load-restrictor: the Dapr resources and the dashboards are kustomize
    directories of their own. A second apply changes nothing."""
    out = prod.kubectl("apply", "--server-side", "-k", str(DEPLOY / "overlays/prod"))

    assert out
    assert all(line.endswith("serverside-applied") for line in out.splitlines())
    local = {
        (doc["kind"], doc["metadata"]["name"])
        for path in sorted((DEPLOY / "dapr").glob("*.yaml"))
        + sorted((DEPLOY / "dapr/access-control").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    applied = {
        (item["kind"], item["metadata"]["name"])
        for kind in ("components.dapr.io", "configurations.dapr.io", "resiliencies.dapr.io",
                     "subscriptions.dapr.io")
        for item in prod.get(kind, f"--namespace={NAMESPACE}")["items"]
    }  # fmt: skip
    assert applied == local
