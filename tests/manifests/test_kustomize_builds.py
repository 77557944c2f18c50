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


def test_storefront_watches_its_own_sidecars_metrics_port(
    rendered: dict[str, list[Manifest]],
) -> None:
    """storefront reads its sidecar's metrics for the outbox spin (storefront/watch.py):
    on the pod's loopback, at the port the sidecar is told to serve them on."""
    for combination, objects in rendered.items():
        (deployment,) = [
            obj
            for obj in objects
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "storefront"
        ]
        template = deployment["spec"]["template"]
        port = template["metadata"]["annotations"]["dapr.io/metrics-port"]
        (app,) = [c for c in template["spec"]["containers"] if c["name"] == "app"]
        watched = [e for e in app["env"] if e["name"] == "STOREFRONT_SIDECAR_METRICS_URL"]
        assert watched == [
            {"name": "STOREFRONT_SIDECAR_METRICS_URL", "value": f"http://127.0.0.1:{port}/metrics"}
        ], combination
        assert port == "9090", combination
