"""skaffold.yaml as skaffold itself reads it (strictly, with each profile) and as it ties
to the rest of the repository; the kind cluster runs the Kubernetes minor that the local
control plane runs. tests/kubernetes renders and deploys it for real."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow_devtools.k8s import skaffold
from orderflow_devtools.k8s.render import Manifest
from orderflow_devtools.tools import KUBERNETES_VERSION, ensure_skaffold

REPO = Path(__file__).resolve().parents[2]
Config = dict[str, Any]


@pytest.fixture
def configs() -> list[Config]:
    return skaffold.load(REPO / "skaffold.yaml")


def test_skaffold_yaml_matches_the_repository(
    configs: list[Config], service_dirs: set[str]
) -> None:
    assert [config["metadata"]["name"] for config in configs] == ["infra", "app"]
    assert skaffold.check_config(configs, REPO, service_dirs) == []


def test_skaffold_builds_every_image_the_manifests_run(
    configs: list[Config], rendered: dict[str, list[Manifest]]
) -> None:
    built = {artifact["image"] for artifact in configs[1]["build"]["artifacts"]} | {
        patch["value"]["image"]
        for profile in configs[1].get("profiles", [])
        for patch in profile.get("patches", [])
        if patch["path"] == "/build/artifacts/-"
    }
    ours = {
        container["image"]
        for objects in rendered.values()
        for obj in objects
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
        if container["image"].startswith("orderflow/")
    }

    assert ours == built


def test_the_kind_cluster_runs_the_validated_kubernetes_version(
    rendered: dict[str, list[Manifest]],
) -> None:
    cluster = yaml.safe_load((REPO / "deploy/kind/cluster.yaml").read_text())
    images = {node["image"] for node in cluster["nodes"]}
    namespace = next(o for o in rendered["base"] if o["kind"] == "Namespace")

    minor = KUBERNETES_VERSION.rsplit(".", 1)[0]
    assert {image.split("@")[0] for image in images} == {f"kindest/node:v{minor}.0"}
    assert all("@sha256:" in image for image in images)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == (
        f"v{minor}"
    )


@pytest.fixture(scope="session")
def skaffold_binary() -> Path:
    return ensure_skaffold(lambda _message: None)


# How people run it: (profiles named, current kube context) -> (kustomize path, image
# target, whether metrics-server is installed). `skaffold dev` activates the dev profile
# by itself; `diagnose` is another command, so the tests name it.
SCENARIOS = {
    "run on a real cluster": ((), None, "deploy/overlays/prod", "runtime", False),
    "dev on kind": (("dev",), "kind-orderflow", "deploy/overlays/dev", "dev", True),
    "dev on minikube": (("dev",), "minikube", "deploy/overlays/dev", "dev", True),
    "dev with chaos on kind": (
        ("dev", "chaos"),
        "kind-orderflow",
        "deploy/overlays/chaos",
        "dev",
        True,
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_skaffold_applies_the_profiles(
    scenario: str, skaffold_binary: Path, tmp_path: Path
) -> None:
    profiles, context, path, target, metrics_server = SCENARIOS[scenario]

    infra, app = skaffold.effective_configs(
        skaffold_binary, REPO / "skaffold.yaml", tmp_path, profiles, context
    )

    assert app["manifests"]["kustomize"]["paths"] == [str(REPO / path)]
    assert {a["docker"]["target"] for a in app["build"]["artifacts"]} == {target}
    assert all(("sync" in a) == (target == "dev") for a in app["build"]["artifacts"])
    releases = [release["name"] for release in infra["deploy"]["helm"]["releases"]]
    assert releases == ["dapr", "kube-prometheus-stack"] + (
        ["metrics-server"] if metrics_server else []
    )


def test_the_load_profile_adds_locust(skaffold_binary: Path, tmp_path: Path) -> None:
    _, app = skaffold.effective_configs(
        skaffold_binary, REPO / "skaffold.yaml", tmp_path, ("dev", "load"), "kind-orderflow"
    )

    assert app["manifests"]["kustomize"]["paths"] == [str(REPO / "deploy/overlays/load")]
    built = {a["image"]: a["docker"]["target"] for a in app["build"]["artifacts"]}
    assert built.pop("orderflow/loadtest") == "runtime"
    assert set(built.values()) == {"dev"}
    assert (REPO / "loadtest/Dockerfile").is_file()
    forwarded = {(f["resourceName"], f["localPort"]) for f in app["portForward"]}
    assert ("locust", 8089) in forwarded


SKAFFOLD_BROKEN = {
    "misspelled field": (
        ("resourceName: storefront", "resourcename: storefront"),
        "field resourcename not found",
    ),
    "profile section that does not exist": (
        ("  - name: dev\n    activation:", "  - name: dev\n    activations:"),
        "field activations not found",
    ),
    "profile patch to a path that is not there": (
        ("path: /manifests/kustomize/paths/0", "path: /manifests/kustomize/paths/3"),
        'applying profile "chaos": invalid path',
    ),
}


@pytest.mark.parametrize("case", sorted(SKAFFOLD_BROKEN))
def test_skaffold_refuses(case: str, skaffold_binary: Path, tmp_path: Path) -> None:
    (old, new), expected = SKAFFOLD_BROKEN[case]
    text = (REPO / "skaffold.yaml").read_text()
    assert old in text
    broken = tmp_path / "skaffold.yaml"
    broken.write_text(text.replace(old, new))

    with pytest.raises(skaffold.SkaffoldError, match=expected):
        skaffold.effective_configs(skaffold_binary, broken, tmp_path, ("chaos",))


def _artifact(configs: list[Config], index: int = 0) -> Config:
    artifact: Config = configs[1]["build"]["artifacts"][index]
    return artifact


REPO_BROKEN: dict[str, tuple[Callable[[list[Config]], object], str]] = {
    "older schema version": (
        lambda c: c[0].update(apiVersion="skaffold/v4beta11"),
        "config infra: apiVersion is not skaffold/v4beta13",
    ),
    "service without an artifact": (
        lambda c: c[1]["build"]["artifacts"].pop(),
        "build: builds ['orderflow/",
    ),
    "target the Dockerfile lacks": (
        lambda c: _artifact(c)["docker"].update(target="debug"),
        "build: orderflow/storefront: no stage debug to build",
    ),
    "another service's build arg": (
        lambda c: _artifact(c)["docker"].update(buildArgs={"SERVICE": "payments"}),
        "build: orderflow/storefront: not built from services/Dockerfile with SERVICE=storefront",
    ),
    "sync of files that do not exist": (
        lambda c: c[1]["profiles"][0]["build"]["artifacts"][0]["sync"]["manual"][0].update(
            src="services/storefront/app/**/*.py"
        ),
        "profile dev: orderflow/storefront: sync source services/storefront/app/**/*.py",
    ),
    "overlay that does not exist": (
        lambda c: c[1]["manifests"]["kustomize"].update(paths=["deploy/overlays/staging"]),
        "kustomize path deploy/overlays/staging is not a kustomize directory",
    ),
    "app that does not require infra": (
        lambda c: c[1].pop("requires"),
        "config app does not require infra",
    ),
    "another Dapr version": (
        lambda c: c[0]["deploy"]["helm"]["releases"][0].update(version="1.17.0"),
        "the dapr release is 1.17.0",
    ),
    "sidecar keeping its capabilities": (
        lambda c: c[0]["deploy"]["helm"]["releases"][0]["overrides"].pop("dapr_sidecar_injector"),
        "the dapr release does not drop the sidecar's capabilities",
    ),
}


@pytest.mark.parametrize("case", sorted(REPO_BROKEN))
def test_the_repository_check_refuses(
    case: str, configs: list[Config], service_dirs: set[str]
) -> None:
    change, expected = REPO_BROKEN[case]
    broken = copy.deepcopy(configs)
    change(broken)

    problems = skaffold.check_config(broken, REPO, service_dirs)

    assert len(problems) == 1
    assert problems[0].startswith(expected)
