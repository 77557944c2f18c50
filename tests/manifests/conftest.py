"""Fixtures for the checks of deploy/, skaffold.yaml and the Dockerfiles that the API
server cannot make (tests/kubernetes applies the same objects to a real one): every
kustomize combination rendered once, and the services as dapr.yaml names them. Nothing
here needs a cluster or a Docker engine; kustomize comes from the Go module proxy."""

from pathlib import Path

import pytest

from orderflow_devtools import runfile
from orderflow_devtools.k8s.render import Manifest, build_combination, combinations

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def service_dirs() -> set[str]:
    """The services: every workspace member under services/ but the shared package."""
    return {
        path.parent.name
        for path in (REPO / "services").glob("*/pyproject.toml")
        if path.parent.name != "common"
    }


@pytest.fixture(scope="session")
def app_ports() -> dict[str, int]:
    """Each service's app port, from the registry of services: dapr.yaml."""
    return {app.app_id: app.app_port for app in runfile.load(REPO / "dapr.yaml")}


@pytest.fixture(scope="session")
def rendered(
    kustomize: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Manifest]]:
    """Every combination's objects, by combination name."""
    scratch = tmp_path_factory.mktemp("kustomize")
    deploy = REPO / "deploy"
    return {
        combination: build_combination(kustomize, deploy, combination, scratch)
        for combination in combinations(deploy)
    }
