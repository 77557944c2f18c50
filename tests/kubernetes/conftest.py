"""The Kubernetes tests share one control plane (orderflow_devtools.cluster), started once
per session: etcd, kube-apiserver, controller-manager, scheduler, metrics-server, Dapr's
sentry and injector, and kwok for the node. Each test that deploys starts from a
namespace-free cluster: `fresh` deletes what an earlier test left in the orderflow
namespace and waits until it is gone."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow_devtools.cluster import LocalCluster
from orderflow_devtools.tools import ClusterTools, ensure_cluster_tools

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "orderflow"


@pytest.fixture(scope="session")
def cluster_tools() -> ClusterTools:
    return ensure_cluster_tools(lambda _message: None)


@pytest.fixture(scope="session")
def cluster(
    cluster_tools: ClusterTools, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    run_dir = tmp_path_factory.mktemp("cluster")
    with (run_dir / "cluster.log").open("w") as log:
        local = LocalCluster(cluster_tools, run_dir, log)
        try:
            local.start(timeout=180)
            yield local
        finally:
            local.stop()


@pytest.fixture
def fresh(cluster: LocalCluster) -> LocalCluster:
    """The cluster without the orderflow namespace (and all that was in it)."""
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s")
    return cluster
