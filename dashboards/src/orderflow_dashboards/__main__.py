"""``orderflow-dashboards [--out DIR] [--check]``: write every dashboard as DIR/<name>.json
and the Grafana provisioning as DIR/provisioning/*.yaml, or with ``--check`` only say
which files differ from what the code generates (exit 1 if any)."""

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from orderflow_dashboards import provisioning
from orderflow_dashboards.definitions import DASHBOARDS


def render() -> dict[str, str]:
    """Every generated file, by its path relative to the dashboards directory."""
    files = {
        f"{name}.json": json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True)
        + "\n"
        for name, build in DASHBOARDS.items()
    }
    # JSON is YAML, and Grafana reads provisioning files only by a .yaml extension.
    for name, content in (
        ("datasources", provisioning.datasources()),
        ("dashboards", provisioning.dashboard_provider()),
    ):
        files[f"provisioning/{name}.yaml"] = json.dumps(content, indent=2) + "\n"
    return files


def stale(out: Path) -> list[str]:
    """The generated files that are missing under ``out`` or differ from the code."""
    return [
        name
        for name, text in render().items()
        if not (out / name).is_file() or (out / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderflow-dashboards", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("dashboards"))
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.out)
        for name in differing:
            sys.stderr.write(f"orderflow-dashboards: {args.out / name} is stale\n")
        return 1 if differing else 0
    for name, text in render().items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
