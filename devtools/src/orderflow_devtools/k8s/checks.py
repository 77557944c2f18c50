"""Our own rules for the rendered objects, beyond what the schemas can say.

Each ``check_*`` takes the objects of one kustomize build and returns its problems, one
line each; an empty list means the rule holds.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from orderflow_devtools.k8s.render import Manifest, name_of

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

# The annotations that give the injected daprd its requests and limits.
# https://docs.dapr.io/operations/hosting/kubernetes/kubernetes-production/#sidecar-resource-settings
SIDECAR_RESOURCES = (
    "dapr.io/sidecar-cpu-request",
    "dapr.io/sidecar-cpu-limit",
    "dapr.io/sidecar-memory-request",
    "dapr.io/sidecar-memory-limit",
)
SIDECAR_SECCOMP = "dapr.io/sidecar-seccomp-profile-type"


def pod_templates(objects: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(workload, pod template) for every object that makes pods."""
    for obj in objects:
        if obj.get("kind") in WORKLOAD_KINDS:
            yield obj, obj["spec"]["template"]
        elif obj.get("kind") == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]


def containers(pod_spec: Manifest) -> list[Manifest]:
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]


def dapr_enabled(template: Manifest) -> bool:
    annotations = template.get("metadata", {}).get("annotations", {})
    return bool(annotations.get("dapr.io/enabled") == "true")


# --- resources -------------------------------------------------------------------------


def check_resources(objects: list[Manifest]) -> list[str]:
    """Every container, and every injected sidecar, has CPU and memory requests and
    limits: the scheduler can place it, and its pod gets a CPU utilisation."""
    problems = []
    for workload, template in pod_templates(objects):
        for container in containers(template["spec"]):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(resources.get(kind, {}))
                if missing:
                    problems.append(
                        f"{name_of(workload)}: container {container['name']} has no"
                        f" {kind} for {', '.join(sorted(missing))}"
                    )
        if dapr_enabled(template):
            annotations = template["metadata"].get("annotations", {})
            problems.extend(
                f"{name_of(workload)}: the Dapr sidecar has no {annotation}"
                for annotation in SIDECAR_RESOURCES
                if not annotations.get(annotation)
            )
    return problems


# --- autoscaling -----------------------------------------------------------------------


def check_autoscalers(objects: list[Manifest]) -> list[str]:
    """Every HPA scales an existing Deployment, whose pods request what its metrics
    measure, and which leaves its replica count to the HPA."""
    deployments = {
        (obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj
        for obj in objects
        if obj.get("kind") == "Deployment"
    }
    problems = []
    for hpa in (obj for obj in objects if obj.get("kind") == "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        ref = spec["scaleTargetRef"]
        target = deployments.get((hpa["metadata"].get("namespace"), ref["name"]))
        if ref.get("kind") != "Deployment" or target is None:
            problems.append(f"{name_of(hpa)}: no Deployment {ref['name']} to scale")
            continue
        if spec.get("minReplicas", 1) > spec["maxReplicas"]:
            problems.append(f"{name_of(hpa)}: minReplicas is above maxReplicas")
        if "replicas" in target["spec"]:
            problems.append(
                f"{name_of(hpa)}: {name_of(target)} sets replicas, which every apply would"
                " reset under the autoscaler"
            )
        if "behavior" not in spec:
            problems.append(f"{name_of(hpa)}: no scaling behavior")
        problems.extend(_metric_problems(hpa, target))
    return problems


def _metric_problems(hpa: Manifest, target: Manifest) -> list[str]:
    template = target["spec"]["template"]
    by_name = {c["name"]: c for c in template["spec"]["containers"]}
    problems = []
    for metric in hpa["spec"].get("metrics", []):
        if metric["type"] == "ContainerResource":
            source = metric["containerResource"]
            container = by_name.get(source["container"])
            if container is None:
                problems.append(f"{name_of(hpa)}: no container {source['container']}")
            elif source["name"] not in container.get("resources", {}).get("requests", {}):
                problems.append(
                    f"{name_of(hpa)}: container {source['container']} requests no {source['name']}"
                )
        elif metric["type"] == "Resource":
            # Pod utilisation is undefined unless every container requests the resource,
            # the injected sidecar included.
            resource = metric["resource"]["name"]
            lacking = [
                c["name"]
                for c in template["spec"]["containers"]
                if resource not in c.get("resources", {}).get("requests", {})
            ]
            annotation = f"dapr.io/sidecar-{resource}-request"
            if dapr_enabled(template) and not template["metadata"]["annotations"].get(annotation):
                lacking.append("daprd")
            if lacking:
                problems.append(
                    f"{name_of(hpa)}: {resource} utilisation needs a request on"
                    f" {', '.join(lacking)}"
                )
    return problems


# --- Pod Security ----------------------------------------------------------------------

# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.34)
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}


def check_pod_security(objects: list[Manifest]) -> list[str]:
    """The Pod Security Standard "restricted" holds for every pod template (and the
    injected sidecar's seccomp profile is asked for), and every namespace enforces it."""
    problems = [
        f"{name_of(ns)}: does not enforce Pod Security restricted"
        for ns in objects
        if ns.get("kind") == "Namespace"
        and ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
        != "restricted"
    ]
    for workload, template in pod_templates(objects):
        problems.extend(f"{name_of(workload)}: {p}" for p in restricted_problems(template))
    return problems


def restricted_problems(template: Manifest) -> list[str]:
    spec = template["spec"]
    pod = spec.get("securityContext", {})
    problems = [
        f"{field} is on" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)
    ]
    problems += [
        f"volume {volume['name']} is not of an allowed type"
        for volume in spec.get("volumes", [])
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES
    ]
    problems += [
        f"sysctl {sysctl['name']} is not a safe one"
        for sysctl in pod.get("sysctls", [])
        if sysctl["name"] not in SAFE_SYSCTLS
    ]
    for container in containers(spec):
        problems += [
            f"container {container['name']}: {problem}"
            for problem in _container_problems(pod, container)
        ]
    if dapr_enabled(template):
        annotations = template["metadata"].get("annotations", {})
        if annotations.get(SIDECAR_SECCOMP) not in ALLOWED_SECCOMP:
            problems.append(f"the Dapr sidecar gets no seccomp profile ({SIDECAR_SECCOMP})")
    return problems


def _container_problems(pod: Manifest, container: Manifest) -> list[str]:
    own = container.get("securityContext", {})

    def effective(field: str) -> Any:
        return own.get(field, pod.get(field))

    problems = []
    if own.get("privileged"):
        problems.append("privileged")
    if own.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if effective("runAsUser") == 0:
        problems.append("runs as uid 0")
    if (effective("seccompProfile") or {}).get("type") not in ALLOWED_SECCOMP:
        problems.append("no RuntimeDefault or Localhost seccomp profile")
    capabilities = own.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        problems.append("does not drop ALL capabilities")
    if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
        problems.append("adds capabilities other than NET_BIND_SERVICE")
    if own.get("procMount", "Default") != "Default":
        problems.append("procMount is not Default")
    if (effective("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("AppArmor is Unconfined")
    if any(port.get("hostPort") for port in container.get("ports", [])):
        problems.append("uses a hostPort")
    return problems


def check_read_only_root(objects: list[Manifest]) -> list[str]:
    """Every container's root filesystem is read-only (all builds but dev's)."""
    return [
        f"{name_of(workload)}: container {container['name']} has a writable root filesystem"
        for workload, template in pod_templates(objects)
        for container in containers(template["spec"])
        if container.get("securityContext", {}).get("readOnlyRootFilesystem") is not True
    ]


# --- one name per service --------------------------------------------------------------


def check_service_names(objects: list[Manifest], services: Mapping[str, int]) -> list[str]:
    """Each Dapr app is a service of the registry, dapr.yaml (``services``: app-id to app
    port): app-id = Deployment = Service = ServiceAccount, and its app port is the
    registry's in the annotation, the container's http port, APP_PORT and the Service.
    Every service of the registry is deployed."""
    problems = []
    by_name = {obj["metadata"]["name"]: obj for obj in objects if obj.get("kind") == "Service"}
    deployed = set()
    for workload, template in pod_templates(objects):
        if not dapr_enabled(template):
            continue
        name = workload["metadata"]["name"]
        deployed.add(name)
        annotations = template["metadata"]["annotations"]
        if annotations.get("dapr.io/app-id") != name:
            problems.append(
                f"{name_of(workload)}: Dapr app-id {annotations.get('dapr.io/app-id')!r}"
                " is not the Deployment's name"
            )
        if name not in services:
            problems.append(f"{name_of(workload)}: no app {name} in dapr.yaml")
        if template["spec"].get("serviceAccountName") != name:
            problems.append(f"{name_of(workload)}: its ServiceAccount is not named {name}")
        problems.extend(_port_problems(workload, template, by_name.get(name), services.get(name)))
    problems.extend(
        f"dapr.yaml app {missing}: no Deployment with Dapr app-id {missing}"
        for missing in sorted(set(services) - deployed)
    )
    return problems


def _port_problems(
    workload: Manifest, template: Manifest, service: Manifest | None, port: int | None
) -> list[str]:
    # The app is the first container: the sidecar is only added at admission.
    app = template["spec"]["containers"][0]
    found = {
        "annotation": template["metadata"]["annotations"].get("dapr.io/app-port"),
        "container port http": next(
            (p["containerPort"] for p in app.get("ports", []) if p.get("name") == "http"), None
        ),
        "APP_PORT": next(
            (e.get("value") for e in app.get("env", []) if e["name"] == "APP_PORT"), None
        ),
    }
    if service is not None:
        found["Service"] = next(
            (p["port"] for p in service["spec"].get("ports", []) if p.get("name") == "http"), None
        )
    problems = []
    if port is not None and any(str(value) != str(port) for value in found.values()):
        problems.append(
            f"{name_of(workload)}: app port differs from dapr.yaml's {port}: "
            + ", ".join(f"{where} {value}" for where, value in found.items())
        )
    labels = template["metadata"].get("labels", {})
    if service is None:
        problems.append(f"{name_of(workload)}: no Service of the same name")
    elif not service["spec"].get("selector") or not (
        service["spec"]["selector"].items() <= labels.items()
    ):
        problems.append(f"{name_of(service)}: does not select the pods of {name_of(workload)}")
    return problems
