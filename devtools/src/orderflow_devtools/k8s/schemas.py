"""Validate objects against the schemas their owners publish.

Built-in kinds: the Kubernetes OpenAPI schemas shipped in kubernetes-validate (its strict
set, which refuses unknown fields). Custom resources: the ``openAPIV3Schema`` of the CRDs
in the Dapr and prometheus-operator Go modules, the same files their Helm charts install.
The API server refuses unknown fields of a custom resource under strict field validation
(kubectl's default), so we close every object schema that does not say otherwise.
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from orderflow_devtools.k8s.render import Manifest, name_of
from orderflow_devtools.tools import DAPR_VERSION, go_module_dir

# The cluster we target: kind v0.30's node image (deploy/kind/cluster.yaml).
KUBERNETES_VERSION = "1.34"
# kube-prometheus-stack 79.x ships an older operator; the monitoring.coreos.com/v1 kinds
# we use are unchanged since. 0.94.1 is the newest release the Go module proxy serves.
PROMETHEUS_OPERATOR_VERSION = "0.94.1"

CRD_SOURCES = (
    ("github.com/dapr/dapr", DAPR_VERSION, "charts/dapr/crds"),
    (
        "github.com/prometheus-operator/prometheus-operator",
        PROMETHEUS_OPERATOR_VERSION,
        "example/prometheus-operator-crd",
    ),
)


def published_crds() -> list[Manifest]:
    """Every CRD in the pinned Dapr and prometheus-operator modules."""
    crds: list[Manifest] = []
    for module, version, folder in CRD_SOURCES:
        for path in sorted((go_module_dir(module, version) / folder).glob("*.yaml")):
            crds.extend(crd_documents(path))
    return crds


class _CrdLoader(yaml.CSafeLoader):
    """libyaml's safe loader (the CRDs are megabytes of YAML), except that a bare ``=``
    (an enum value in the relabeling schemas), which PyYAML reads as YAML 1.1's "value"
    tag and cannot build, is the string "=" here."""


def _plain_scalar(loader: yaml.CSafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CrdLoader.add_constructor("tag:yaml.org,2002:value", _plain_scalar)


def crd_documents(path: Path) -> list[Manifest]:
    return [
        doc
        for doc in yaml.load_all(path.read_text(), Loader=_CrdLoader)
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]


class SchemaValidator:
    def __init__(self, crds: Iterable[Manifest]) -> None:
        self._custom: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schema = closed(version["schema"]["openAPIV3Schema"])
                self._custom[key] = jsonschema.Draft7Validator(schema)

    def custom_kinds(self) -> set[tuple[str, str]]:
        return set(self._custom)

    def problems(self, obj: Manifest) -> list[str]:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        custom = self._custom.get(key)
        if custom is not None:
            return [
                f"{name_of(obj)}: {_path(error.absolute_path)}: {error.message}"
                for error in custom.iter_errors(obj)
            ]
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{name_of(obj)}: no published schema for {key[0]} {key[1]}"]
        except kubernetes_validate.ValidationError as error:
            return [f"{name_of(obj)}: {_path(error.absolute_path)}: {error.message}"]
        return []


def closed(schema: Any) -> Any:
    """A copy of a CRD schema in which objects with listed properties take no others,
    unless the schema keeps unknown fields (x-kubernetes-preserve-unknown-fields).
    Only the structural parts are closed (properties, items, additionalProperties): the
    branches of anyOf/allOf/oneOf in a structural schema only add value checks."""
    if not isinstance(schema, dict):
        return schema
    copy = dict(schema)
    if isinstance(schema.get("properties"), dict):
        copy["properties"] = {name: closed(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            copy["additionalProperties"] = False
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            copy[keyword] = closed(schema[keyword])
    return copy


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(part) for part in parts) or "(root)"
