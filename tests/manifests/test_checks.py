"""Our own rules for every kustomize combination (orderflow_devtools.k8s.checks), and for
each rule a deliberately broken copy of the prod objects that it must refuse."""

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from orderflow_devtools.k8s import checks
from orderflow_devtools.k8s.render import Manifest, combinations

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMBINATIONS = combinations(DEPLOY)
# The dev overlay, and the chaos overlay built on it, keep the services' root filesystems
# writable for skaffold's file sync.
WRITABLE = {"overlays/dev", "overlays/chaos", "overlays/load"}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_container_and_sidecar_has_requests_and_limits(
    combination: str, rendered: dict[str, list[Manifest]]
) -> None:
    assert checks.check_resources(rendered[combination]) == []


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_autoscaler_can_scale_its_deployment(
    combination: str, rendered: dict[str, list[Manifest]]
) -> None:
    objects = rendered[combination]

    assert checks.check_autoscalers(objects) == []
    scaled = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert scaled == {"storefront", "fulfillment"}


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_pod_security_restricted_holds(
    combination: str, rendered: dict[str, list[Manifest]]
) -> None:
    assert checks.check_pod_security(rendered[combination]) == []


@pytest.mark.parametrize("combination", sorted(set(COMBINATIONS) - WRITABLE))
def test_root_filesystems_are_read_only(
    combination: str, rendered: dict[str, list[Manifest]]
) -> None:
    assert checks.check_read_only_root(rendered[combination]) == []


@pytest.mark.parametrize("combination", sorted(WRITABLE))
def test_dev_makes_only_the_service_containers_writable(
    combination: str, rendered: dict[str, list[Manifest]], service_dirs: set[str]
) -> None:
    assert checks.check_read_only_root(rendered[combination]) == [
        f"Deployment/{name}: container app has a writable root filesystem"
        for name in _deployment_order(rendered[combination])
        if name in service_dirs
    ]


def test_dapr_yaml_registers_every_service(
    app_ports: dict[str, int], service_dirs: set[str]
) -> None:
    assert set(app_ports) == service_dirs


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_one_name_per_service(
    combination: str, rendered: dict[str, list[Manifest]], app_ports: dict[str, int]
) -> None:
    assert checks.check_service_names(rendered[combination], app_ports) == []


def _deployment_order(objects: list[Manifest]) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"]


# --- the checks bite ----------------------------------------------------------------------

Change = Callable[[list[Manifest]], object]


def _one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _pod(objects: list[Manifest], name: str) -> Manifest:
    template: Manifest = _one(objects, "Deployment", name)["spec"]["template"]
    return template


def _app(objects: list[Manifest], name: str) -> Manifest:
    container: Manifest = _pod(objects, name)["spec"]["containers"][0]
    return container


def _annotations(objects: list[Manifest], name: str) -> dict[str, str]:
    annotations: dict[str, str] = _pod(objects, name)["metadata"]["annotations"]
    return annotations


BROKEN: dict[str, tuple[Callable[..., list[str]], Change, str]] = {
    "container without limits": (
        checks.check_resources,
        lambda o: _app(o, "payments")["resources"].pop("limits"),
        "Deployment/payments: container app has no limits for cpu, memory",
    ),
    "sidecar without a CPU request": (
        checks.check_resources,
        lambda o: _annotations(o, "inventory").pop("dapr.io/sidecar-cpu-request"),
        "Deployment/inventory: the Dapr sidecar has no dapr.io/sidecar-cpu-request",
    ),
    "autoscaler of a missing Deployment": (
        checks.check_autoscalers,
        lambda o: _one(o, "HorizontalPodAutoscaler", "storefront")["spec"]["scaleTargetRef"].update(
            name="storefrnt"
        ),
        "HorizontalPodAutoscaler/storefront: no Deployment storefrnt to scale",
    ),
    "container metric without a request": (
        checks.check_autoscalers,
        lambda o: _app(o, "fulfillment")["resources"]["requests"].pop("cpu"),
        "HorizontalPodAutoscaler/fulfillment: container app requests no cpu",
    ),
    "pod CPU metric while the sidecar requests none": (
        checks.check_autoscalers,
        lambda o: (
            _one(o, "HorizontalPodAutoscaler", "storefront")["spec"].update(
                metrics=[
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ]
            ),
            _annotations(o, "storefront").pop("dapr.io/sidecar-cpu-request"),
        ),
        "HorizontalPodAutoscaler/storefront: cpu utilisation needs a request on daprd",
    ),
    "scaled Deployment that sets replicas": (
        checks.check_autoscalers,
        lambda o: _one(o, "Deployment", "fulfillment")["spec"].update(replicas=1),
        "HorizontalPodAutoscaler/fulfillment: Deployment/fulfillment sets replicas",
    ),
    "namespace that only warns": (
        checks.check_pod_security,
        lambda o: _one(o, "Namespace", "orderflow")["metadata"]["labels"].update(
            {"pod-security.kubernetes.io/enforce": "baseline"}
        ),
        "Namespace/orderflow: does not enforce Pod Security restricted",
    ),
    "privilege escalation": (
        checks.check_pod_security,
        lambda o: _app(o, "payments")["securityContext"].update(allowPrivilegeEscalation=True),
        "Deployment/payments: container app: allowPrivilegeEscalation is not false",
    ),
    "root allowed": (
        checks.check_pod_security,
        lambda o: _pod(o, "redis")["spec"]["securityContext"].pop("runAsNonRoot"),
        "Deployment/redis: container redis: runAsNonRoot is not true",
    ),
    "added capability": (
        checks.check_pod_security,
        lambda o: _app(o, "storefront")["securityContext"]["capabilities"].update(
            add=["NET_ADMIN"]
        ),
        "Deployment/storefront: container app: adds capabilities other than NET_BIND_SERVICE",
    ),
    "hostPath volume": (
        checks.check_pod_security,
        lambda o: _pod(o, "jaeger")["spec"]["volumes"].append(
            {"name": "host", "hostPath": {"path": "/var"}}
        ),
        "Deployment/jaeger: volume host is not of an allowed type",
    ),
    "unconfined seccomp": (
        checks.check_pod_security,
        lambda o: _pod(o, "notifications")["spec"]["securityContext"].update(
            seccompProfile={"type": "Unconfined"}
        ),
        "Deployment/notifications: container app: no RuntimeDefault or Localhost seccomp",
    ),
    "sidecar without seccomp": (
        checks.check_pod_security,
        lambda o: _annotations(o, "fulfillment").pop("dapr.io/sidecar-seccomp-profile-type"),
        "Deployment/fulfillment: the Dapr sidecar gets no seccomp profile",
    ),
    "writable root filesystem": (
        checks.check_read_only_root,
        lambda o: _app(o, "inventory")["securityContext"].update(readOnlyRootFilesystem=False),
        "Deployment/inventory: container app has a writable root filesystem",
    ),
    "app-id that is not the name": (
        checks.check_service_names,
        lambda o: _annotations(o, "payments").update({"dapr.io/app-id": "payment"}),
        "Deployment/payments: Dapr app-id 'payment' is not the Deployment's name",
    ),
    "Service of another name": (
        checks.check_service_names,
        lambda o: _one(o, "Service", "inventory")["metadata"].update(name="stock"),
        "Deployment/inventory: no Service of the same name",
    ),
    "APP_PORT that is not the app port": (
        checks.check_service_names,
        lambda o: next(
            e for e in _app(o, "notifications")["env"] if e["name"] == "APP_PORT"
        ).update(value="8006"),
        "Deployment/notifications: app port differs from dapr.yaml's 8005: annotation 8005,"
        " container port http 8005, APP_PORT 8006, Service 8005",
    ),
    "Service on another port": (
        checks.check_service_names,
        lambda o: _one(o, "Service", "payments")["spec"]["ports"][0].update(port=8080),
        "Deployment/payments: app port differs from dapr.yaml's 8003: annotation 8003,"
        " container port http 8003, APP_PORT 8003, Service 8080",
    ),
    "registered service without a Deployment": (
        checks.check_service_names,
        lambda o: o.remove(_one(o, "Deployment", "fulfillment")),
        "dapr.yaml app fulfillment: no Deployment with Dapr app-id fulfillment",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_check_refuses(
    case: str, rendered: dict[str, list[Manifest]], app_ports: dict[str, int]
) -> None:
    check, change, expected = BROKEN[case]
    objects = copy.deepcopy(rendered["overlays/prod"])
    change(objects)

    problems = check(objects, app_ports) if check is checks.check_service_names else check(objects)

    assert [problem for problem in problems if problem.startswith(expected)] == problems
    assert len(problems) == 1
