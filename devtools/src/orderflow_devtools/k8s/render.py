"""Render kustomize directories into plain objects."""

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


class RenderError(Exception):
    """kustomize failed; the message is its own last line."""


def kustomize_build(kustomize: Path, directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kustomize, "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise RenderError(f"{directory}: {lines[-1] if lines else 'kustomize failed'}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def name_of(obj: Manifest) -> str:
    """``Kind/name`` for messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def combinations(deploy: Path) -> list[str]:
    """Every way we ship deploy/: the base alone, the base with each component, and each
    overlay, as ``base``, ``base+<component>`` and ``overlays/<name>``."""
    components = sorted(p.parent.name for p in (deploy / "components").glob("*/kustomization.yaml"))
    overlays = sorted(p.parent.name for p in (deploy / "overlays").glob("*/kustomization.yaml"))
    return ["base", *(f"base+{c}" for c in components), *(f"overlays/{o}" for o in overlays)]


def build_combination(
    kustomize: Path, deploy: Path, combination: str, scratch: Path
) -> list[Manifest]:
    """Render one combination; ``base+<component>`` gets a throwaway kustomization in
    ``scratch`` that adds the component to the base, as an overlay would (kustomize takes
    relative paths only)."""
    if "+" not in combination:
        return kustomize_build(kustomize, deploy / combination)
    base, component = combination.split("+")
    directory = scratch / combination
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "orderflow",
                "resources": [os.path.relpath(deploy / base, directory)],
                "components": [os.path.relpath(deploy / "components" / component, directory)],
            }
        )
    )
    return kustomize_build(kustomize, directory)
