"""``orderflow-load SCENARIO``: one headless Locust run with CSV and HTML reports and the
gates (gates.py) as its exit code.

It checks what it can before Locust starts, so a wrong scenario, an unreachable target or
a bad option fails at once with a one-line cause (exit 2), not after a minute of errors.
Exit 0: every gate passed; 1: a gate failed (listed on stderr and in ``phases.json``).
"""

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

from orderflow_loadtest.shapes import SCENARIOS

LOCUSTFILES = Path(__file__).parent / "locustfiles"
EXIT_USAGE = 2
# Where the local stack keeps its tokens (orderflow_devtools/tokens.py), made on its first
# start; the tokens of another target come from the environment instead.
LOCAL_TOKENS = Path(".run/secrets/tokens.json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the cause is what the reader needs.
        self.exit(EXIT_USAGE, f"orderflow-load: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="orderflow-load", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", help=", ".join(SCENARIOS))
    parser.add_argument("--host", default="http://127.0.0.1:8001", help="storefront's URL")
    parser.add_argument(
        "--inventory-host", default="http://127.0.0.1:8002", help="inventory's URL ('' to skip)"
    )
    parser.add_argument("--out", type=Path, default=Path(".run/load"), help="where the reports go")
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin Locust to this CPU core (default: any)"
    )
    parser.add_argument(
        "--tokens", type=Path, default=LOCAL_TOKENS, help="the local stack's tokens, if any"
    )
    args = parser.parse_args(argv)
    _local_tokens(args.tokens)
    try:
        command = prepare(args.scenario, args.host, args.inventory_host, args.out, args.cpu)
    except ValueError as error:
        print(f"orderflow-load: {error}", file=sys.stderr)  # noqa: T201 - a CLI
        return EXIT_USAGE
    return subprocess.run(command, check=False).returncode


def prepare(scenario: str, host: str, inventory_host: str, out: Path, cpu: int | None) -> list[str]:
    """Check the run can work and return Locust's command line; ValueError says why not."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if cpu is not None:
        if cpu not in os.sched_getaffinity(0):
            raise ValueError(f"--cpu {cpu}: this machine offers {sorted(os.sched_getaffinity(0))}")
        # Inherited by Locust: its CPU is its own, not shared with the stack it measures.
        os.sched_setaffinity(0, {cpu})
    _reachable(f"{host.rstrip('/')}/healthz", "storefront")
    if inventory_host:
        _reachable(f"{inventory_host.rstrip('/')}/healthz", "inventory")
    if SCENARIOS[scenario]().touched_services:
        _fault_routes_open(host)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / scenario
    # A module's name has no hyphen: chaos-short's locustfile is chaos_short.py.
    locustfile = LOCUSTFILES / f"{scenario.replace('-', '_')}.py"
    return [
        sys.executable,
        *("-m", "locust"),
        *("-f", str(locustfile)),
        "--headless",
        "--only-summary",
        *("--host", host),
        *("--inventory-host", inventory_host),
        *("--csv", str(prefix)),
        *("--html", f"{prefix}.html"),
        *("--results", f"{prefix}-phases.json"),
        # Let in-flight requests finish when a shape ends, so each is counted once.
        *("--stop-timeout", "15"),
    ]


def _reachable(url: str, what: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - http(s) URL
            response.read()
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        raise ValueError(
            f"{what} is not answering at {url} ({_reason(error)}): start the stack with `make up`"
        ) from error


def _fault_routes_open(host: str) -> None:
    url = f"{host.rstrip('/')}/faults/payments"
    token = os.environ.get("ORDERFLOW_FAULT_TOKEN", "")
    request = urllib.request.Request(url, headers={"X-Fault-Token": token})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
            json.load(response)
    except urllib.error.HTTPError as error:
        raise ValueError(
            f"this scenario sets fault flags, but {url} answers {error.code}: set "
            "STOREFRONT_FAULT_TOKEN on storefront and the same ORDERFLOW_FAULT_TOKEN here"
        ) from error


def _local_tokens(file: Path) -> None:
    """The fault admin and inventory tokens from the local stack's tokens file, for Locust
    (which inherits this environment), unless the environment sets them already."""
    if not file.exists():
        return
    tokens = json.loads(file.read_text())
    os.environ.setdefault("ORDERFLOW_FAULT_TOKEN", tokens["STOREFRONT_FAULT_TOKEN"])
    os.environ.setdefault("ORDERFLOW_INVENTORY_TOKEN", tokens["apps"]["inventory"]["APP_API_TOKEN"])


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
