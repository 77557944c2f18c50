"""dapr.yaml is the registry of services: the one file that names them and their ports.
What cannot read it (pyproject.toml, the Dapr resources, the README's table) is checked
against it here, each mismatch one readable line. The Kubernetes objects are checked
against it in test_checks.py (names and ports), test_network_policies.py and
test_tokens.py; skaffold.yaml in test_skaffold.py."""

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderflow_devtools import runfile
from orderflow_devtools.k8s.render import Manifest

REPO = Path(__file__).resolve().parents[2]
APPS = runfile.load(REPO / "dapr.yaml")
SERVICES = {app.app_id for app in APPS}


def _differences(where: str, found: set[str]) -> list[str]:
    missing = sorted(SERVICES - found)
    unknown = sorted(found - SERVICES)
    return [
        *(f"{where}: {name} is missing (dapr.yaml has it)" for name in missing),
        *(f"{where}: {name} is not in dapr.yaml" for name in unknown),
    ]


def _pyproject_lists(pyproject: dict[str, Any]) -> dict[str, set[str]]:
    """The workspace's four lists of packages, each reduced to the services in it (the
    shared packages are all called orderflow-* or orderflow_*)."""
    tool = pyproject["tool"]
    lists = {
        "[project] dependencies": pyproject["project"]["dependencies"],
        "[tool.uv.sources]": list(tool["uv"]["sources"]),
        "[tool.ruff.lint.isort] known-first-party": tool["ruff"]["lint"]["isort"][
            "known-first-party"
        ],
    }
    services = {
        where: {name for name in names if not name.startswith("orderflow")}
        for where, names in lists.items()
    }
    services["[tool.mypy] mypy_path"] = {
        Path(path).parent.name for path in tool["mypy"]["mypy_path"] if path.startswith("services/")
    } - {"common"}
    return services


def check_pyproject(pyproject: dict[str, Any]) -> list[str]:
    return [
        problem
        for where, names in _pyproject_lists(pyproject).items()
        for problem in _differences(f"pyproject.toml {where}", names)
    ]


def check_scopes(resources: list[dict[str, object]]) -> list[str]:
    """Every scope names a registered service, and every service reads its fault flags
    (the configstore)."""
    problems = []
    for resource in resources:
        metadata = resource["metadata"]
        assert isinstance(metadata, dict)
        scopes = resource.get("scopes", [])
        assert isinstance(scopes, list)
        where = f"deploy/dapr {resource['kind']}/{metadata['name']} scopes"
        if metadata["name"] == "configstore":
            problems.extend(_differences(where, set(scopes)))
        else:
            problems.extend(
                f"{where}: {name} is not in dapr.yaml" for name in scopes if name not in SERVICES
            )
    return problems


def readme_ports(readme: str) -> dict[str, tuple[int, ...]]:
    """The README's table of ports: service -> app, Dapr HTTP, Dapr gRPC, metrics."""
    row = r"^\| ([a-z][a-z0-9-]*) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$"
    rows = re.findall(row, readme, re.MULTILINE)
    return {row[0]: tuple(int(port) for port in row[1:]) for row in rows}


def check_readme(readme: str) -> list[str]:
    table = readme_ports(readme)
    problems = _differences("README.md ports table", set(table))
    for app in APPS:
        ports = (app.app_port, app.dapr_http_port, app.dapr_grpc_port, app.metrics_port)
        if app.app_id in table and table[app.app_id] != ports:
            problems.append(
                f"README.md ports table: {app.app_id} has {table[app.app_id]}, dapr.yaml {ports}"
            )
    return problems


def check_fault_injection(objects: list[Manifest], chaos: bool) -> list[str]:
    """With the chaos component every service has FAULTS_ENABLED and storefront's admin
    API the registry's services; without it no service has either."""
    problems = []
    for obj in objects:
        if obj["kind"] != "Deployment" or obj["metadata"]["name"] not in SERVICES:
            continue
        name = obj["metadata"]["name"]
        env = {
            var["name"]: var.get("value")
            for var in obj["spec"]["template"]["spec"]["containers"][0].get("env", [])
        }
        enabled = env.get("FAULTS_ENABLED")
        if chaos and enabled != "true":
            problems.append(f"Deployment/{name}: FAULTS_ENABLED is {enabled}, not true")
        if not chaos and enabled is not None:
            problems.append(f"Deployment/{name}: FAULTS_ENABLED is set without the chaos component")
        services = env.get("STOREFRONT_FAULT_SERVICES")
        wanted = [app.app_id for app in APPS] if chaos and name == "storefront" else None
        if (json.loads(services) if services is not None else None) != wanted:
            problems.append(
                f"Deployment/{name}: STOREFRONT_FAULT_SERVICES is {services}, wanted {wanted}"
            )
    return problems


def _dapr_resources() -> list[dict[str, object]]:
    return [
        doc
        for path in sorted((REPO / "deploy" / "dapr").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and "kind" in doc
    ]


def test_pyproject_lists_every_service_of_the_registry() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())

    assert check_pyproject(pyproject) == []


def test_a_service_missing_from_pyproject_is_named() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pyproject["project"]["dependencies"].remove("payments")
    pyproject["tool"]["uv"]["sources"]["reviews"] = {"workspace": True}

    assert check_pyproject(pyproject) == [
        "pyproject.toml [project] dependencies: payments is missing (dapr.yaml has it)",
        "pyproject.toml [tool.uv.sources]: reviews is not in dapr.yaml",
    ]


def test_dapr_scopes_name_only_registered_services() -> None:
    assert check_scopes(_dapr_resources()) == []


def test_a_scope_out_of_the_registry_is_named() -> None:
    resources = _dapr_resources()
    for resource in resources:
        if resource["metadata"]["name"] == "configstore":  # type: ignore[index]
            resource["scopes"] = ["storefront", "inventory", "payments", "fulfillment"]
        if resource["metadata"]["name"] == "orderstore":  # type: ignore[index]
            resource["scopes"] = ["storefront", "reviews"]

    assert check_scopes(resources) == [
        "deploy/dapr Component/configstore scopes: notifications is missing (dapr.yaml has it)",
        "deploy/dapr Component/orderstore scopes: reviews is not in dapr.yaml",
    ]


def test_the_readme_ports_table_is_the_registry() -> None:
    assert check_readme((REPO / "README.md").read_text()) == []


def test_a_wrong_port_in_the_readme_is_named() -> None:
    readme = (REPO / "README.md").read_text()
    readme = readme.replace("| payments | 8003 |", "| payments | 8006 |")
    readme = readme.replace("| notifications | 8005 | 3505 | 3515 | 9105 |\n", "")

    assert check_readme(readme) == [
        "README.md ports table: notifications is missing (dapr.yaml has it)",
        "README.md ports table: payments has (8006, 3503, 3513, 9103),"
        " dapr.yaml (8003, 3503, 3513, 9103)",
    ]


def test_fault_injection_is_on_with_the_chaos_component_only(
    rendered: dict[str, list[Manifest]],
) -> None:
    problems = {
        combination: check_fault_injection(objects, chaos="chaos" in combination)
        for combination, objects in rendered.items()
    }

    assert problems == {combination: [] for combination in rendered}
    assert {"base+chaos", "overlays/chaos", "overlays/prod"} <= set(rendered)


@pytest.mark.parametrize("combination", ["overlays/chaos", "overlays/prod"])
def test_a_wrong_fault_setting_is_named(
    combination: str, rendered: dict[str, list[Manifest]]
) -> None:
    objects = copy.deepcopy(rendered[combination])
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "payments":
            env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
            env[:] = [var for var in env if var["name"] != "FAULTS_ENABLED"]
            env.append({"name": "FAULTS_ENABLED", "value": "false"})
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "storefront":
            env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
            env[:] = [var for var in env if var["name"] != "STOREFRONT_FAULT_SERVICES"]
            env.append({"name": "STOREFRONT_FAULT_SERVICES", "value": '["payments"]'})

    problems = check_fault_injection(objects, chaos=combination == "overlays/chaos")

    wanted = "['storefront', 'inventory', 'payments', 'fulfillment', 'notifications']"
    expected = {
        "overlays/chaos": [
            "Deployment/payments: FAULTS_ENABLED is false, not true",
            f'Deployment/storefront: STOREFRONT_FAULT_SERVICES is ["payments"], wanted {wanted}',
        ],
        "overlays/prod": [
            "Deployment/payments: FAULTS_ENABLED is set without the chaos component",
            'Deployment/storefront: STOREFRONT_FAULT_SERVICES is ["payments"], wanted None',
        ],
    }
    assert problems == expected[combination]
