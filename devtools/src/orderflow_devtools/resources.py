"""Read and check the Dapr resource files (deploy/dapr) before anything starts.

daprd logs a broken resource and carries on without it, which surfaces much later as a
puzzling 500; we stop at once instead, with the file and the cause on one line. The local
stack also takes the Redis and OTLP addresses from these files, so that each lives in one
place.

The apps that others call have an accessControl policy of their own, in
``access-control/<app id>.yaml`` beside the resources: a Configuration that holds only
``spec.accessControl``, which the launcher puts in place of the shared one for that app's
sidecar (kustomize does the same for Kubernetes, deploy/dapr/kustomization.yml).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = {"Component", "Configuration", "Resiliency", "Subscription"}


class ResourceError(Exception):
    """A resource file is broken; the message is the one-line cause."""


@dataclass(frozen=True)
class Resources:
    documents: list[dict[str, Any]]
    redis_port: int
    otlp_grpc_port: int
    # By app id: the Configuration holding that app's own accessControl policy.
    access_control: dict[str, dict[str, Any]]


def load(resources_path: Path, config_file: Path) -> Resources:
    documents: list[dict[str, Any]] = []
    for path in sorted(resources_path.glob("*.yaml")):
        documents.extend(_documents(path))
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in documents]
    twice = sorted({f"{kind}/{name}" for kind, name in names if names.count((kind, name)) > 1})
    if twice:
        raise ResourceError(f"{resources_path}: defined more than once: {', '.join(twice)}")
    if config_file.parent != resources_path:
        documents.extend(_documents(config_file))
    configurations = [doc for doc in documents if doc["kind"] == "Configuration"]
    if len(configurations) != 1:
        raise ResourceError(
            f"{resources_path}: expected one Configuration, found {len(configurations)}"
        )
    return Resources(
        documents=documents,
        redis_port=_port(_redis_host(documents, resources_path), "redisHost"),
        otlp_grpc_port=_port(
            str(
                configurations[0]
                .get("spec", {})
                .get("tracing", {})
                .get("otel", {})
                .get("endpointAddress", "")
            ),
            "spec.tracing.otel.endpointAddress",
        ),
        access_control=_access_control(resources_path / "access-control"),
    )


def _access_control(directory: Path) -> dict[str, dict[str, Any]]:
    policies = {}
    for path in sorted(directory.glob("*.yaml")):
        documents = _documents(path)
        if len(documents) != 1 or documents[0]["kind"] != "Configuration":
            raise ResourceError(f"{path}: expected one Configuration")
        (policy,) = documents
        if policy["metadata"]["name"] != path.stem:
            raise ResourceError(f"{path}: the Configuration must be named {path.stem!r}")
        if set(policy["spec"]) != {"accessControl"}:
            raise ResourceError(f"{path}: spec must hold accessControl and nothing else")
        policies[path.stem] = policy
    return policies


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        loaded = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        raise ResourceError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error
    for doc in loaded:
        if not isinstance(doc, dict):
            raise ResourceError(f"{path}: a document is not a mapping")
        api_version = str(doc.get("apiVersion", ""))
        kind = doc.get("kind")
        if not api_version.startswith("dapr.io/"):
            raise ResourceError(f"{path}: apiVersion {api_version!r} is not a dapr.io version")
        if kind not in KINDS:
            raise ResourceError(f"{path}: kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        name = (doc.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            raise ResourceError(f"{path}: a {kind} has no metadata.name")
        if not isinstance(doc.get("spec"), dict):
            raise ResourceError(f"{path}: {kind}/{name} has no spec")
    return loaded


def _redis_host(documents: list[dict[str, Any]], where: Path) -> str:
    hosts = {
        str(item.get("value"))
        for doc in documents
        if doc["kind"] == "Component" and str(doc["spec"].get("type", "")).endswith(".redis")
        for item in doc["spec"].get("metadata") or []
        if item.get("name") == "redisHost"
    }
    if len(hosts) != 1:
        raise ResourceError(
            f"{where}: the Redis components must share one redisHost, found {sorted(hosts)}"
        )
    return hosts.pop()


def _port(address: str, field: str) -> int:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ResourceError(f"{field} {address!r} is not host:port")
    return int(port)
