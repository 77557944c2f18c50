"""The one-node cluster of `make cluster` without Docker (orderflow_devtools.node): a real
kubelet with containerd and runc, in a network namespace of its own that has no route out;
a service image built with buildah runs in a pod that becomes Ready through a real HTTP
probe; stopping leaves no namespace, process, mount or changed kernel setting behind.

The tests run in this order and share one cluster; the last one stops it."""

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from orderflow_devtools import tokens
from orderflow_devtools.cluster import NODE
from orderflow_devtools.node import (
    KERNEL_TUNABLES,
    NETNS,
    NODE_IP,
    POD_CIDR,
    REGISTRY,
    SERVICE_RANGE,
    Images,
    NodeCluster,
    netns_names,
    routes,
)
from orderflow_devtools.tools import KUBERNETES_VERSION, ClusterTools, Tools, ensure_node_tools

pytestmark = pytest.mark.kubernetes

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "node-test"


@dataclass(frozen=True)
class Machine:
    """What the machine looks like outside the cluster, before it starts."""

    netns: set[str]
    tunables: dict[str, str]
    iptables: list[str]


def _iptables() -> list[str]:
    """The root namespace's iptables rules, without the packet counters."""
    save = shutil.which("iptables-save")
    assert save is not None
    out = subprocess.run([save], capture_output=True, text=True, check=True).stdout
    return [line.split(" [", 1)[0] for line in out.splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def before() -> Machine:
    return Machine(
        netns=netns_names(),
        tunables={name: Path("/proc/sys", name).read_text() for name in KERNEL_TUNABLES},
        iptables=_iptables(),
    )


@pytest.fixture(scope="module")
def node_cluster(
    before: Machine, cluster_tools: ClusterTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeCluster]:
    assert NETNS not in before.netns
    node_tools = ensure_node_tools(lambda _message: None)
    run_dir = tmp_path_factory.mktemp("node")
    with (run_dir / "cluster.log").open("w") as log:
        cluster = NodeCluster(cluster_tools, node_tools, run_dir, log)
        try:
            cluster.start(timeout=300)
            yield cluster
        finally:
            cluster.stop()


def test_the_node_is_a_real_kubelet_ready_on_its_veth_address(node_cluster: NodeCluster) -> None:
    node: dict[str, Any] = node_cluster.get("node", NODE)

    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"]
    assert node["status"]["addresses"] == [
        {"type": "InternalIP", "address": NODE_IP},
        {"type": "Hostname", "address": NODE},
    ]
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == f"v{KUBERNETES_VERSION}"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    assert [n["metadata"]["name"] for n in node_cluster.get("nodes")["items"]] == [NODE]


def test_a_service_image_built_with_buildah_runs_ready_in_a_pod_beside_its_daprd(
    node_cluster: NodeCluster, tools: Tools
) -> None:
    images = Images(REPO, node_cluster.node_tools, lambda _message: None)
    image = f"{REGISTRY}/orderflow/storefront:test"
    images.push(images.build("storefront"), image)
    node_cluster.kubectl("create", "namespace", NAMESPACE)
    pair = tokens.ensure(node_cluster.run_dir, ["storefront"]).pair("storefront")
    node_cluster.apply([_tokens_secret(pair), _storefront_pod(image, tools.daprd)])

    node_cluster.kubectl(
        "wait", "--for=condition=Ready", "pod/storefront", f"--namespace={NAMESPACE}",
        "--timeout=120s",
    )  # fmt: skip

    pod = node_cluster.get("pod", "storefront", "-n", NAMESPACE)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith(POD_CIDR.rsplit(".", 2)[0] + ".")
    containers = {c["name"]: c for c in pod["status"]["containerStatuses"]}
    assert {name: (c["ready"], c["restartCount"]) for name, c in containers.items()} == {
        "app": (True, 0),
        "daprd": (True, 0),
    }
    assert containers["app"]["imageID"].startswith(f"{REGISTRY}/orderflow/storefront@sha256:")
    # The logs come from the kubelet, through the API server, over the node's address.
    assert "Uvicorn running on http://0.0.0.0:8001" in node_cluster.kubectl(
        "logs", "storefront", "--container=app", f"--namespace={NAMESPACE}"
    )
    # The app started only once its sidecar answered (orderflow_common.sidecar.connect).
    assert "dapr initialized. Status: Running." in node_cluster.kubectl(
        "logs", "storefront", "--container=daprd", f"--namespace={NAMESPACE}"
    )


def _tokens_secret(pair: dict[str, str]) -> dict[str, Any]:
    """The two tokens storefront requires at start, as the manifests give them."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "storefront-tokens", "namespace": NAMESPACE},
        "stringData": pair,
    }


def _storefront_pod(image: str, daprd: Path) -> dict[str, Any]:
    """storefront and a real daprd 1.18.2 beside it, as the injector would add it: the app
    starts only once its sidecar answers. The node has no Dapr control plane yet, so
    daprd runs standalone (no sentry, so no mTLS; no components), from the cached binary
    (dynamically linked, hence the Debian-based service image), its listeners on the
    pod's loopback and the API and app tokens required as everywhere."""
    hardened = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    sidecar_flags = [
        "--app-id=storefront",
        "--app-port=8001",
        "--app-protocol=http",
        "--mode=standalone",
        "--dapr-http-port=3500",
        "--dapr-grpc-port=50001",
        "--dapr-listen-addresses=127.0.0.1",
        "--dapr-internal-grpc-listen-address=127.0.0.1",
        "--metrics-listen-address=127.0.0.1",
        "--resources-path=/dapr/resources",
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "storefront", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "env": [
                        {"name": "APP_HOST", "value": "0.0.0.0"},
                        {"name": "APP_PORT", "value": "8001"},
                    ],
                    "envFrom": [{"secretRef": {"name": "storefront-tokens"}}],
                    "ports": [{"name": "http", "containerPort": 8001}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http"},
                        "periodSeconds": 1,
                    },
                    "securityContext": hardened,
                },
                {
                    "name": "daprd",
                    "image": image,
                    "command": ["/opt/dapr/daprd", *sidecar_flags],
                    "envFrom": [{"secretRef": {"name": "storefront-tokens"}}],
                    "volumeMounts": [
                        {"name": "daprd", "mountPath": "/opt/dapr", "readOnly": True},
                        {"name": "resources", "mountPath": "/dapr/resources"},
                    ],
                    "securityContext": hardened,
                },
            ],
            "volumes": [
                {"name": "daprd", "hostPath": {"path": str(daprd.parent), "type": "Directory"}},
                {"name": "resources", "emptyDir": {}},
            ],
        },
    }


@pytest.mark.usefixtures("node_cluster")
def test_the_namespace_routes_only_to_its_own_ranges() -> None:
    main = [r for r in routes() if r.get("table", "main") == "main"]
    ipv4 = sorted(r["dst"] for r in main if ":" not in r["dst"])

    assert ipv4 == sorted(["10.213.0.0/30", POD_CIDR, SERVICE_RANGE])
    # IPv6: the links' own link-local range, nothing else (no address, no default).
    assert {r["dst"] for r in main if ":" in r["dst"]} == {"fe80::/64"}
    assert all("gateway" not in r for r in main)
    # Every other table is the kernel's local one: the namespace's own addresses.
    assert {r.get("table", "main") for r in routes()} == {"main", "local"}


def test_stopping_leaves_nothing_behind(node_cluster: NodeCluster, before: Machine) -> None:
    pids = list(node_cluster.stack.pids().values())
    shims = [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "containerd-shim-runc-v2"
        and str(node_cluster.containerd_socket) in (p.info["cmdline"] or [])
    ]
    assert len(pids) == 10
    assert len(shims) == 1

    node_cluster.stop()

    assert netns_names() == before.netns
    assert [pid for pid in [*pids, *shims] if psutil.pid_exists(pid)] == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(node_cluster.run_dir) not in mounts
    assert str(Images(REPO, node_cluster.node_tools, print).cache) not in mounts
    assert {name: Path("/proc/sys", name).read_text() for name in KERNEL_TUNABLES} == (
        before.tunables
    )
    assert _iptables() == before.iptables
    assert not any(Path("/sys/fs/cgroup").glob("*/orderflow-node"))
