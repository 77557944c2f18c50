"""skaffold against the local control plane, as a user with no Helm repository in reach:
`skaffold render` of the app module, and `skaffold deploy` of both modules with prebuilt
image tags (kwok pulls no image): the Dapr release installs from the chart in the dapr Go
module (the local profile, chosen by the kube context), and every Deployment stabilizes
with its injected sidecar."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from orderflow_devtools import runfile
from orderflow_devtools.cluster import DAPR_NAMESPACE, LocalCluster, dapr_chart
from orderflow_devtools.tools import ClusterTools, ensure_kustomize, ensure_skaffold

pytestmark = pytest.mark.kubernetes

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "orderflow"
TAG = "0.1.0"
SERVICES = [app.app_id for app in runfile.load(REPO / "dapr.yaml")]
IMAGES = ",".join(f"orderflow/{name}:{TAG}" for name in SERVICES)


@pytest.fixture(scope="module")
def skaffold(
    cluster: LocalCluster, cluster_tools: ClusterTools, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """skaffold, and an environment with its own HOME (no usage data sent, no update
    check), the cluster's kubeconfig, and helm, kubectl and kustomize on PATH."""
    binary = ensure_skaffold(lambda _message: None)
    home = tmp_path_factory.mktemp("skaffold-home")
    tools = {
        cluster_tools.helm.parent,
        cluster_tools.kubectl.parent,
        ensure_kustomize(lambda _message: None).parent,
    }
    env = {
        **os.environ,
        "HOME": str(home),
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": os.pathsep.join([*map(str, sorted(tools)), os.environ["PATH"]]),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "ORDERFLOW_DAPR_CHART": str(dapr_chart()),
    }
    subprocess.run(
        [binary, "config", "set", "--global", "collect-metrics", "false"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    return binary, env


def _run(skaffold: tuple[Path, dict[str, str]], *args: str) -> str:
    """Run skaffold; the kubeconfig's current context (orderflow-local) picks the local
    profile."""
    binary, env = skaffold
    result = subprocess.run(
        [binary, *args],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_skaffold_renders_the_app_module(
    skaffold: tuple[Path, dict[str, str]], cluster: LocalCluster
) -> None:
    # The app module, with the infra module it requires (the Dapr chart, through helm).
    rendered = _run(skaffold, "render", "--module=app", f"--images={IMAGES}", "--offline=true",
                    "--digest-source=tag")  # fmt: skip
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    expected = [
        doc
        for doc in yaml.safe_load_all(
            cluster.kubectl("kustomize", str(REPO / "deploy/overlays/prod"))
        )
        if doc
    ]

    ours = [
        o
        for o in objects
        if o["metadata"].get("namespace") == NAMESPACE or o["metadata"]["name"] == NAMESPACE
    ]
    chart = [o for o in objects if o not in ours]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in ours) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in expected
    )
    images = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in ours
        if o["kind"] == "Deployment" and o["metadata"]["name"] in SERVICES
    }
    assert images == {name: f"orderflow/{name}:{TAG}" for name in SERVICES}
    # The chart from the module, without the sentry and injector the cluster runs itself.
    workloads = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in chart
        if o["kind"] in {"Deployment", "StatefulSet"}
    }
    assert workloads == {
        "dapr-operator": "ghcr.io/dapr/operator:1.18.2",
        "dapr-sentry": "ghcr.io/dapr/sentry:1.18.2",
        "dapr-placement-server": "ghcr.io/dapr/placement:1.18.2",
        "dapr-scheduler-server": "ghcr.io/dapr/scheduler:1.18.2",
    }
    assert not [o for o in chart if o["kind"] == "MutatingWebhookConfiguration"]


def test_skaffold_deploys_dapr_from_the_module_chart_and_the_app(
    skaffold: tuple[Path, dict[str, str]], fresh: LocalCluster, cluster_tools: ClusterTools
) -> None:
    out = _run(skaffold, "deploy", f"--images={IMAGES}", "--status-check=true")

    assert "Deployments stabilized" in out
    releases = subprocess.run(
        [cluster_tools.helm, "list", f"--namespace={DAPR_NAMESPACE}", "--output=json"],
        env=skaffold[1], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # The module's copy of the chart is unversioned (0.0.0; the release stamps it), so
    # the images are pinned by global.tag.
    assert [(r["name"], r["chart"], r["status"]) for r in yaml.safe_load(releases)] == [
        ("dapr", "dapr-0.0.0", "deployed")
    ]
    control_plane = {
        d["metadata"]["name"]: d["status"].get("availableReplicas")
        for d in fresh.get("deployments", f"--namespace={DAPR_NAMESPACE}")["items"]
    }
    assert control_plane == {"dapr-operator": 1, "dapr-sentry": 1}
    images = {
        c["image"]
        for d in fresh.get("deployments", f"--namespace={DAPR_NAMESPACE}")["items"]
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"ghcr.io/dapr/operator:1.18.2", "ghcr.io/dapr/sentry:1.18.2"}
    deployments = fresh.rolled_out(NAMESPACE)
    assert {d["metadata"]["name"] for d in deployments} == {*SERVICES, "redis", "jaeger"}
    for pod in fresh.get("pods", f"--namespace={NAMESPACE}")["items"]:
        name = pod["metadata"]["labels"]["app.kubernetes.io/name"]
        if name in SERVICES:
            assert [c["image"] for c in pod["spec"]["containers"]] == [
                f"orderflow/{name}:{TAG}",
                "ghcr.io/dapr/daprd:1.18.2",
            ]
