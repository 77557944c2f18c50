"""skaffold.yaml: skaffold's own reading of it, and what ties it to the rest of the
repository.

skaffold parses the file strictly (an unknown field is an error) and applies its profiles
(`skaffold diagnose --yaml-only`), which needs no cluster; tests/kubernetes renders and
deploys it against the local control plane. https://skaffold.dev/docs/references/yaml/
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from orderflow_devtools.k8s.images import stages
from orderflow_devtools.tools import DAPR_VERSION

# The newest config schema of skaffold 2.16.1, the newest release the proxy serves. skaffold
# reads older ones too (upgrading them as it goes), so this is checked here.
SCHEMA_VERSION = "v4beta13"


class SkaffoldError(Exception):
    """skaffold refused the configuration; the message is its own."""


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def effective_configs(
    skaffold: Path,
    config: Path,
    scratch: Path,
    profiles: tuple[str, ...] = (),
    kube_context: str | None = None,
) -> list[dict[str, Any]]:
    """The configs as skaffold reads them with ``profiles`` named (-p) and, if given,
    ``kube_context`` as the current context (for profiles activated by it). skaffold gets
    its own HOME and a kubeconfig that points nowhere: nothing is contacted."""
    kubeconfig = scratch / "kubeconfig"
    contexts = [kube_context] if kube_context else []
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "none", "user": {}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "none", "user": "none"}}
                    for name in contexts
                ],
                "current-context": kube_context or "",
            }
        )
    )
    command = [str(skaffold), "diagnose", "--yaml-only", "--filename", str(config)]
    if profiles:
        command += ["--profile", ",".join(profiles)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={
            **os.environ,
            "HOME": str(scratch),
            "KUBECONFIG": str(kubeconfig),
            "SKAFFOLD_UPDATE_CHECK": "false",
        },
        check=False,
    )
    if result.returncode != 0:
        raise SkaffoldError(" ".join(result.stderr.split()) or "skaffold diagnose failed")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def check_config(configs: list[dict[str, Any]], repo: Path, service_dirs: set[str]) -> list[str]:
    """The app module builds one image per service directory (in every build section),
    from services/Dockerfile with that service as SERVICE and an existing target, syncs
    only files that exist, renders directories that exist, and requires the infra module,
    whose Dapr release is the pinned runtime with capabilities dropped from the sidecar."""
    by_name = {config["metadata"]["name"]: config for config in configs}
    problems = [
        f"config {name}: apiVersion is not skaffold/{SCHEMA_VERSION}"
        for name, config in by_name.items()
        if config.get("apiVersion") != f"skaffold/{SCHEMA_VERSION}"
    ]
    app, infra = by_name.get("app"), by_name.get("infra")
    if app is None or infra is None:
        return ["skaffold.yaml needs the configs infra and app"]
    if {"configs": ["infra"]} not in app.get("requires", []):
        problems.append("config app does not require infra")
    builds = [("build", app["build"])] + [
        (f"profile {p['name']}", p["build"]) for p in app.get("profiles", []) if "build" in p
    ]
    for where, build in builds:
        problems += [f"{where}: {p}" for p in _build_problems(build, repo, service_dirs)]
    manifests = [app["manifests"]] + [
        p["manifests"] for p in app.get("profiles", []) if "manifests" in p
    ]
    manifests.extend(
        {"kustomize": {"paths": [patch["value"]]}}
        for profile in app.get("profiles", [])
        for patch in profile.get("patches", [])
        if patch["path"].startswith("/manifests/kustomize/paths/")
    )
    problems += [
        f"kustomize path {path} is not a kustomize directory"
        for manifest in manifests
        for path in manifest["kustomize"]["paths"]
        if not (repo / path / "kustomization.yaml").is_file()
    ]
    problems += _dapr_release_problems(infra)
    return problems


def _build_problems(build: dict[str, Any], repo: Path, service_dirs: set[str]) -> list[str]:
    problems = []
    images = {artifact["image"] for artifact in build["artifacts"]}
    expected = {f"orderflow/{name}" for name in service_dirs}
    if images != expected:
        problems.append(f"builds {sorted(images)}, not one image per service {sorted(expected)}")
    for artifact in build["artifacts"]:
        service = artifact["image"].removeprefix("orderflow/")
        docker = artifact.get("docker", {})
        dockerfile = repo / artifact.get("context", ".") / docker.get("dockerfile", "Dockerfile")
        built_as = docker.get("buildArgs", {}).get("SERVICE")
        if dockerfile != repo / "services" / "Dockerfile" or built_as != service:
            problems.append(
                f"{artifact['image']}: not built from services/Dockerfile with SERVICE={service}"
            )
            continue
        if docker.get("target") not in {stage.name for stage in stages(dockerfile.read_text())}:
            problems.append(f"{artifact['image']}: no stage {docker.get('target')} to build")
        problems.extend(
            f"{artifact['image']}: sync source {rule['src']} matches nothing"
            for rule in artifact.get("sync", {}).get("manual", [])
            if not list(repo.glob(rule["src"]))
        )
    return problems


def _dapr_release_problems(infra: dict[str, Any]) -> list[str]:
    releases = {release["name"]: release for release in infra["deploy"]["helm"]["releases"]}
    dapr = releases.get("dapr")
    if dapr is None:
        return ["config infra installs no dapr release"]
    problems = []
    if dapr.get("version") != DAPR_VERSION:
        problems.append(f"the dapr release is {dapr.get('version')}, not {DAPR_VERSION}")
    injector = dapr.get("overrides", {}).get("dapr_sidecar_injector", {})
    if injector.get("sidecarDropALLCapabilities") is not True:
        problems.append("the dapr release does not drop the sidecar's capabilities")
    return problems
