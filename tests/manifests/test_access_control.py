"""Service invocation on Kubernetes is the local stack's default deny: every combination
has the shared Configuration (deny everyone) and inventory's and payments' own (the
policy that admits storefront, deploy/dapr/access-control), each the shared one in all but
accessControl, and each Deployment's sidecar loads the right one."""

from pathlib import Path
from typing import Any

import yaml

from orderflow_devtools.k8s.render import Manifest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OWN_POLICY = {"inventory", "payments"}
SHARED = {"defaultAction": "deny", "trustDomain": "public"}


def _configurations(objects: list[Manifest]) -> dict[str, Manifest]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "Configuration"}


def _local_policy(app_id: str) -> Any:
    text = (DEPLOY / "dapr" / "access-control" / f"{app_id}.yaml").read_text()
    return yaml.safe_load(text)["spec"]["accessControl"]


def test_every_combination_has_the_shared_configuration_and_one_per_called_app(
    rendered: dict[str, list[Manifest]],
) -> None:
    for combination, objects in rendered.items():
        configurations = _configurations(objects)

        assert set(configurations) == {"orderflow", *OWN_POLICY}, combination
        shared = configurations["orderflow"]
        assert shared["spec"]["accessControl"] == SHARED, combination
        for app_id in OWN_POLICY:
            own = configurations[app_id]
            assert own["spec"]["accessControl"] == _local_policy(app_id), (combination, app_id)
            # Tracing, metrics and anything added later: the shared Configuration's.
            assert {k: v for k, v in own["spec"].items() if k != "accessControl"} == {
                k: v for k, v in shared["spec"].items() if k != "accessControl"
            }, (combination, app_id)


def test_the_called_apps_admit_exactly_storefront_with_its_verbs(
    rendered: dict[str, list[Manifest]],
) -> None:
    for combination, objects in rendered.items():
        # The namespace part of the callers' SPIFFE ids: the one the apps run in.
        assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "Deployment"} == {
            "orderflow"
        }
        for app_id, operation in (("inventory", "/reservations"), ("payments", "/charges")):
            policy = _configurations(objects)[app_id]["spec"]["accessControl"]

            assert policy == {
                **SHARED,
                "policies": [
                    {
                        "appId": "storefront",
                        "defaultAction": "deny",
                        "trustDomain": "public",
                        "namespace": "orderflow",
                        "operations": [
                            {"name": operation, "httpVerb": ["POST", "DELETE"], "action": "allow"}
                        ],
                    }
                ],
            }, (combination, app_id)


def test_each_sidecar_loads_its_apps_configuration(rendered: dict[str, list[Manifest]]) -> None:
    for combination, objects in rendered.items():
        loaded = {
            obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["annotations"][
                "dapr.io/config"
            ]
            for obj in objects
            if obj["kind"] == "Deployment"
            and obj["spec"]["template"]["metadata"].get("annotations", {}).get("dapr.io/enabled")
            == "true"
        }

        assert loaded == {
            "storefront": "orderflow",
            "inventory": "inventory",
            "payments": "payments",
            "fulfillment": "orderflow",
            "notifications": "orderflow",
        }, combination
