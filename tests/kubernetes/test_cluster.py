"""The local control plane itself: every process listens on 127.0.0.1 in 20000-20999 but
the three Dapr listeners that bind all interfaces whatever they are told (dapr 1.18.2:
the injector's webhook and health servers, sentry's health server); the API server
refuses anyone without a client certificate of its CA; its node is kwok's; sentry learns the
cluster domain from a hosts file of its own, not from the machine's DNS server."""

import ssl
from pathlib import Path

import httpx
import psutil
import pytest

from orderflow_devtools.cluster import API_SERVER, NODE, PORTS, LocalCluster

pytestmark = pytest.mark.kubernetes

# Documented in docs/kubernetes.md and orderflow_devtools.cluster.
ALL_INTERFACES = {
    ("dapr-injector", PORTS["dapr-injector"]),
    ("dapr-injector", PORTS["dapr-injector-health"]),
    ("dapr-sentry", PORTS["dapr-sentry-health"]),
}


def test_everything_listens_on_loopback_but_three_dapr_listeners(cluster: LocalCluster) -> None:
    listening: set[tuple[str, str, int]] = set()
    for name, pid in cluster.stack.pids().items():
        for connection in psutil.Process(pid).net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                listening.add((name, connection.laddr.ip, connection.laddr.port))

    assert {port for _, _, port in listening} == set(PORTS.values())
    assert {(name, port) for name, ip, port in listening if ip != "127.0.0.1"} == ALL_INTERFACES
    assert all(20000 <= port <= 20999 for _, _, port in listening)


def test_sentry_resolves_the_cluster_domain_without_leaving_loopback(
    cluster: LocalCluster,
) -> None:
    # /proc/PID/mountinfo: mount ID, parent ID, major:minor, root, mount point, ...
    mounts = Path(f"/proc/{cluster.stack.pids()['dapr-sentry']}/mountinfo").read_text()
    # The root is the source's path within its own file system: compare its tail.
    bound = {fields[4]: fields[3] for fields in map(str.split, mounts.splitlines())}

    assert bound["/etc/hosts"].endswith("/sentry-etc/hosts")
    assert bound["/etc/resolv.conf"].endswith("/sentry-etc/resolv.conf")
    # What sentry logs when its cluster-domain lookup fails (dapr v1.18.2 pkg/sentry).
    assert [line for line in cluster.stack.lines("dapr-sentry") if "cluster domain" in line] == []


def test_the_api_server_knows_no_one_without_a_certificate(cluster: LocalCluster) -> None:
    trusting = ssl.create_default_context(cafile=cluster.pki.path("ca.crt"))
    with httpx.Client(base_url=API_SERVER, verify=trusting, timeout=10) as anonymous:
        response = anonymous.get("/api/v1/namespaces")

    assert response.status_code == 403
    assert response.json()["message"] == (
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces"'
        ' in API group "" at the cluster scope'
    )


def test_the_node_is_kwoks(cluster: LocalCluster) -> None:
    nodes = cluster.get("nodes")["items"]

    assert [node["metadata"]["name"] for node in nodes] == [NODE]
    info = nodes[0]["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "kwok-0.7.0"
    assert [a for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP"] == [
        {"type": "InternalIP", "address": "127.0.0.1"}
    ]
