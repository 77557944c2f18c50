"""Every kustomize combination renders, into the orderflow namespace, and carries the
local stack's Dapr resources."""

from pathlib import Path

import pytest
import yaml

from orderflow_devtools.k8s.render import (
    Manifest,
    RenderError,
    build_combination,
    combinations,
    kustomize_build,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("combination", combinations(DEPLOY))
def test_combination_builds_into_the_orderflow_namespace(
    combination: str, kustomize: Path, tmp_path: Path
) -> None:
    objects = build_combination(kustomize, DEPLOY, combination, tmp_path)

    assert objects
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {
        "orderflow"
    }


def test_there_are_components_and_both_overlays() -> None:
    found = combinations(DEPLOY)

    assert {"overlays/dev", "overlays/prod", "base+monitoring"} <= set(found)


def test_every_dapr_resource_of_the_local_stack_is_deployed(
    rendered: dict[str, list[Manifest]],
) -> None:
    local = {
        (doc["kind"], doc["metadata"]["name"])
        for path in sorted((DEPLOY / "dapr").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }

    for combination, objects in rendered.items():
        assert local <= {(obj["kind"], obj["metadata"]["name"]) for obj in objects}, combination


def test_a_broken_kustomization_does_not_build(kustomize: Path, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - missing.yaml\n"
    )

    with pytest.raises(RenderError, match=r"missing\.yaml"):
        kustomize_build(kustomize, tmp_path)
