"""The PrometheusRule that carries deploy/monitoring/rules to kube-prometheus-stack.

The rule files are the one source (the local Prometheus loads them as they are); the
operator wants the same groups inside a PrometheusRule object, so this writes that object
into the monitoring component, and tests/manifests checks the committed copy is current.
https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.PrometheusRule
"""

import sys
from pathlib import Path
from typing import Any

import yaml

HEADER = (
    "# Generated from deploy/monitoring/rules/*.yml by\n"
    "# `uv run python -m orderflow_devtools.k8s.prometheusrule`: edit the rule files, not this.\n"
)


def prometheus_rule(rules_dir: Path) -> dict[str, Any]:
    groups: list[Any] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "orderflow"},
        "spec": {"groups": groups},
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the PromQL) as literal blocks, as in the rule files."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render(rules_dir: Path) -> str:
    body = yaml.dump(prometheus_rule(rules_dir), Dumper=_Dumper, sort_keys=False, width=100)
    return HEADER + body


def main() -> None:
    repo = Path(__file__).resolve().parents[4]
    target = repo / "deploy" / "components" / "monitoring" / "prometheusrule.yaml"
    target.write_text(render(repo / "deploy" / "monitoring" / "rules"))
    sys.stderr.write(f"wrote {target.relative_to(repo)}\n")


if __name__ == "__main__":
    main()
