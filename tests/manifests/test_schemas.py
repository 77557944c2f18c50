"""Every rendered object matches the schema its owner publishes: Kubernetes' own (strict,
unknown fields refused) or the CRDs of Dapr and the Prometheus operator."""

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from orderflow_devtools.k8s.render import Manifest, combinations
from orderflow_devtools.k8s.schemas import SchemaValidator

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("combination", combinations(DEPLOY))
def test_every_object_matches_its_published_schema(
    combination: str, rendered: dict[str, list[Manifest]], validator: SchemaValidator
) -> None:
    problems = [problem for obj in rendered[combination] for problem in validator.problems(obj)]

    assert problems == []


def test_the_custom_resources_are_checked_against_their_crds(
    rendered: dict[str, list[Manifest]], validator: SchemaValidator
) -> None:
    custom_groups = {api_version.split("/")[0] for api_version, _ in validator.custom_kinds()}
    used = {
        (obj["apiVersion"], obj["kind"])
        for objects in rendered.values()
        for obj in objects
        if obj["apiVersion"].split("/")[0] in custom_groups
    }

    assert used <= validator.custom_kinds()
    assert {
        ("dapr.io/v1alpha1", "Component"),
        ("dapr.io/v1alpha1", "Configuration"),
        ("dapr.io/v1alpha1", "Resiliency"),
        ("dapr.io/v2alpha1", "Subscription"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    } <= used


def _edit(
    kind: str, name: str, change: Callable[[Manifest], object]
) -> Callable[[list[Manifest]], Manifest]:
    def broken(objects: list[Manifest]) -> Manifest:
        found = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
        obj = copy.deepcopy(found)
        change(obj)
        return obj

    return broken


BROKEN = {
    "misspelled Deployment field": (
        _edit("Deployment", "payments", lambda d: d["spec"].update(replica=2)),
        "'replica' was unexpected",
    ),
    "Service port given as a name": (
        _edit("Service", "storefront", lambda s: s["spec"]["ports"][0].update(port="http")),
        "is not of type 'integer'",
    ),
    "HPA metric type unknown to autoscaling/v2": (
        _edit(
            "HorizontalPodAutoscaler",
            "storefront",
            lambda h: h["spec"]["metrics"][0].update(containerResources={}),
        ),
        "'containerResources' was unexpected",
    ),
    "misspelled PodMonitor field": (
        _edit(
            "PodMonitor",
            "orderflow-apps",
            lambda p: p["spec"].update(podMetricEndpoints=p["spec"].pop("podMetricsEndpoints")),
        ),
        "'podMetricEndpoints' was unexpected",
    ),
    "Dapr Component metadata as a map": (
        _edit("Component", "pubsub", lambda c: c["spec"].update(metadata={"redisHost": "x"})),
        "is not of type 'array'",
    ),
    "Dapr retry field the CRD does not have": (
        _edit(
            "Resiliency",
            "orderflow",
            lambda r: r["spec"]["policies"]["retries"]["invoke-5xx"].update(
                initialInterval="100ms"
            ),
        ),
        "'initialInterval' was unexpected",
    ),
    "kind nobody publishes": (
        _edit("Service", "storefront", lambda s: s.update(kind="Servise")),
        "no published schema",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_schema_check_refuses(
    case: str, rendered: dict[str, list[Manifest]], validator: SchemaValidator
) -> None:
    breaks, expected = BROKEN[case]
    broken = breaks(rendered["overlays/prod"])

    problems = validator.problems(broken)

    assert len(problems) == 1
    assert expected in problems[0]
