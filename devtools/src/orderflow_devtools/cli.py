"""``orderflow``: the developer command line.

    orderflow tools          make sure daprd, Redis, Prometheus, promtool and Jaeger are here
    orderflow up             run the local stack until Ctrl-C or SIGTERM
    orderflow down           stop a stack that `orderflow up` runs elsewhere

Every failure ends with a one-line cause on stderr and a non-zero exit.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from orderflow_devtools import resources, runfile
from orderflow_devtools.stack import (
    JAEGER_QUERY_PORT,
    LOOPBACK,
    PROMETHEUS_PORT,
    LocalStack,
    StackError,
)
from orderflow_devtools.tools import ToolError, Tools, ensure_all

EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderflow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-file", type=Path, default=Path("dapr.yaml"), help="the multi-app run file"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tools", help="provision the pinned tools (cached outside the repo)")
    up = commands.add_parser("up", help="run the local stack until Ctrl-C or SIGTERM")
    up.add_argument("--run-dir", type=Path, default=Path(".run"), help="where logs and data go")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to become healthy")
    args = parser.parse_args(argv)
    try:
        tools = ensure_all(_note)
        if args.command == "tools":
            for name, path in vars(tools).items():
                print(f"{name:<13} {path}")
            return 0
        return _up(tools, args.run_file, args.run_dir, args.timeout)
    except (ToolError, runfile.RunFileError, resources.ResourceError) as error:
        print(f"orderflow: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StackError as error:
        print(f"orderflow: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _note(message: str) -> None:
    print(f"orderflow: {message}", file=sys.stderr)


PID_FILE = "orderflow.pid"


def _down(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text())
    except FileNotFoundError:
        _note(f"nothing to stop: no {pid_file}")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _note(f"nothing to stop: process {pid} from {pid_file} is gone")
        pid_file.unlink()
        return 0
    deadline = time.monotonic() + 60
    while pid_file.exists():
        if time.monotonic() > deadline:
            _note(f"process {pid} did not stop within 60s")
            return EXIT_FAILURE
        time.sleep(0.1)
    _note("stopped")
    return 0


class _StopRequestedError(Exception):
    """Raised in the main thread by SIGINT or SIGTERM, wherever it is, to unwind to the
    stop; during start-up as much as afterwards."""


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signal.Signals(signum).name)


def _up(tools: Tools, run_file: Path, run_dir: Path, timeout: float) -> int:
    local = LocalStack(run_file.resolve(), run_dir.resolve(), tools, sys.stdout)
    pid_file = run_dir / PID_FILE
    started = time.monotonic()
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        local.start(timeout)
        pid_file.write_text(str(os.getpid()))
        count = len(local.stack.processes)
        _note(f"all {count} processes healthy in {time.monotonic() - started:.1f}s")
        for app_id in local.apps:
            _note(f"{app_id:<14} {local.app_url(app_id)}")
        _note(f"{'prometheus':<14} http://{LOOPBACK}:{PROMETHEUS_PORT}")
        _note(f"{'jaeger':<14} http://{LOOPBACK}:{JAEGER_QUERY_PORT}")
        _note("press Ctrl-C to stop")
        reported: set[str] = set()
        while True:
            time.sleep(0.5)
            for name, code in local.stack.exited().items():
                if name not in reported:
                    reported.add(name)
                    _note(f"{name} exited with code {code}; the rest keeps running")
    except _StopRequestedError as stop:
        _note(f"{stop}: stopping")
    finally:
        # A second Ctrl-C must not cut the stop short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        local.stop()
        pid_file.unlink(missing_ok=True)
    _note("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
