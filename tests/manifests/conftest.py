"""Fixtures for the offline checks of deploy/, skaffold.yaml and the Dockerfiles: the
pinned kustomize, every kustomize combination rendered once, and the published schemas.
Nothing here needs a cluster or a Docker engine; kustomize and the schemas come from the
Go module proxy (cached after the first run) and PyPI."""

from pathlib import Path

import pytest

from orderflow_devtools.k8s.render import Manifest, build_combination, combinations
from orderflow_devtools.k8s.schemas import SchemaValidator, published_crds

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


@pytest.fixture(scope="session")
def validator() -> SchemaValidator:
    return SchemaValidator(published_crds())
