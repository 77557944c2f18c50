"""Every service's sidecar requires a Dapr API token and sends its app an app API token,
both from Secrets that `orderflow cluster secrets` makes (never from a committed file);
the app reads the same two; the fault admin API exists in the chaos overlay only."""

from pathlib import Path

from orderflow_devtools.k8s import secrets
from orderflow_devtools.k8s.render import Manifest

REPO = Path(__file__).resolve().parents[2]


def _deployments(objects: list[Manifest]) -> dict[str, Manifest]:
    return {
        obj["metadata"]["name"]: obj
        for obj in objects
        if obj["kind"] == "Deployment"
        and obj["metadata"]["labels"].get("app.kubernetes.io/component") == "service"
    }


def _secret_env(container: Manifest) -> dict[str, tuple[str, str]]:
    return {
        env["name"]: (
            env["valueFrom"]["secretKeyRef"]["name"],
            env["valueFrom"]["secretKeyRef"]["key"],
        )
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


def test_every_service_names_its_own_token_secrets_in_every_combination(
    rendered: dict[str, list[Manifest]], service_dirs: set[str]
) -> None:
    assert set(secrets.SERVICES) == service_dirs
    for combination, objects in rendered.items():
        deployments = _deployments(objects)
        assert set(deployments) == service_dirs, combination
        for name, deployment in deployments.items():
            template = deployment["spec"]["template"]
            annotations = template["metadata"]["annotations"]
            [app] = [c for c in template["spec"]["containers"] if c["name"] == "app"]

            assert (
                annotations["dapr.io/api-token-secret"],
                annotations["dapr.io/app-token-secret"],
            ) == (f"{name}-dapr-api-token", f"{name}-app-api-token"), (combination, name)
            assert _secret_env(app) == {
                "DAPR_API_TOKEN": (f"{name}-dapr-api-token", "token"),
                "APP_API_TOKEN": (f"{name}-app-api-token", "token"),
            }, (combination, name)


def test_the_secrets_command_makes_exactly_the_secrets_the_manifests_name(
    rendered: dict[str, list[Manifest]],
) -> None:
    named = set()
    for objects in rendered.values():
        for obj in objects:
            if obj["kind"] != "Deployment":
                continue
            spec = obj["spec"]["template"]["spec"]
            annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
            named |= {
                annotations[key]
                for key in ("dapr.io/api-token-secret", "dapr.io/app-token-secret")
                if key in annotations
            }
            for container in spec["containers"]:
                named |= {secret for secret, _ in _secret_env(container).values()}
                named |= {
                    source["secretRef"]["name"]
                    for source in container.get("envFrom", [])
                    if "secretRef" in source
                }
    made = secrets.wanted()

    assert named == set(made)
    assert {name: sorted(data) for name, data in made.items()} == {
        **{f"{app}-dapr-api-token": ["token"] for app in secrets.SERVICES},
        **{f"{app}-app-api-token": ["token"] for app in secrets.SERVICES},
        "storefront-fault-token": ["STOREFRONT_FAULT_TOKEN"],
    }
    # Random each time: 32 bytes, URL-safe base64.
    assert (
        len({data["token"] for name, data in made.items() if name != "storefront-fault-token"})
        == 10
    )
    assert {len(value) for data in made.values() for value in data.values()} == {43}


def test_no_committed_manifest_holds_a_secret_or_a_token_value(
    rendered: dict[str, list[Manifest]],
) -> None:
    for combination, objects in rendered.items():
        assert [obj["metadata"]["name"] for obj in objects if obj["kind"] == "Secret"] == [], (
            combination
        )
        for obj in objects:
            if obj["kind"] != "Deployment":
                continue
            for container in obj["spec"]["template"]["spec"]["containers"]:
                plain = {env["name"] for env in container.get("env", []) if "value" in env}
                assert not plain & {"DAPR_API_TOKEN", "APP_API_TOKEN", "STOREFRONT_FAULT_TOKEN"}


def test_only_the_chaos_overlay_has_the_fault_admin_api(
    rendered: dict[str, list[Manifest]],
) -> None:
    with_fault_token = {
        combination
        for combination, objects in rendered.items()
        if any(
            source.get("secretRef", {}).get("name") == "storefront-fault-token"
            for source in _deployments(objects)["storefront"]["spec"]["template"]["spec"][
                "containers"
            ][0].get("envFrom", [])
        )
    }

    assert "overlays/prod" in rendered
    assert with_fault_token == {c for c in rendered if "chaos" in c}
    assert with_fault_token
