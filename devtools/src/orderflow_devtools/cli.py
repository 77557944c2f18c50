"""``orderflow``: the developer command line.

    orderflow tools                       provision daprd, Redis, Prometheus, promtool, Jaeger
    orderflow up                          run the local stack until Ctrl-C or SIGTERM
    orderflow down                        stop a stack that `orderflow up` runs elsewhere
    orderflow wait                        return once that stack is healthy (scripts, labs)
    orderflow fault show SERVICE          a service's fault flags (docs/faults.md)
    orderflow fault set SERVICE FLAG=V..  replace them; flags left out go back to off
    orderflow fault clear SERVICE         turn them all off
    orderflow status                      each entity of the spec in its state, from live signals
    orderflow bench [--quick]             the benchmarks; writes .run/bench/bench.{json,md}
    orderflow bench --soak [--soak-rps N] 10 minutes at 50 (N) orders/s; writes .run/bench/soak.*
    orderflow bench --compare FILE        compare a bench.json with the committed baseline
    orderflow bench --sdk                 only the Dapr SDK against plain HTTP (about 1 min)
    orderflow cluster tools               provision the local Kubernetes control plane
    orderflow cluster up                  run it until Ctrl-C or SIGTERM (docs/kubernetes.md)
    orderflow cluster down                stop a control plane that `cluster up` runs elsewhere
    orderflow cluster node-tools          provision it: kubelet, kube-proxy, Debian's containerd...
    orderflow cluster node                a one-node cluster with real containers (Linux, root)
    orderflow cluster node-down           stop the cluster that `cluster node` runs elsewhere
    orderflow cluster secrets             make the services' token Secrets in the current cluster

Every failure ends with a one-line cause on stderr and a non-zero exit.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol

import httpx

from orderflow_devtools import bench, cluster, node, resources, runfile, status, tokens
from orderflow_devtools.k8s import secrets as k8s_secrets
from orderflow_devtools.stack import (
    JAEGER_QUERY_PORT,
    LOOPBACK,
    PROMETHEUS_PORT,
    LocalStack,
    Stack,
    StackError,
)
from orderflow_devtools.tools import (
    ToolError,
    Tools,
    ensure_all,
    ensure_cluster_tools,
    ensure_node_tools,
)

EXIT_FAILURE = 1
EXIT_USAGE = 2
PID_FILE = "orderflow.pid"
CLUSTER_RUN_DIR = Path(".run/cluster")
NODE_RUN_DIR = Path(".run/node")


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one return per command
    parser = argparse.ArgumentParser(prog="orderflow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run-file", type=Path, default=Path("dapr.yaml"), help="the multi-app run file"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tools", help="provision the pinned tools (cached outside the repo)")
    up = commands.add_parser("up", help="run the local stack until Ctrl-C or SIGTERM")
    down = commands.add_parser("down", help="stop a stack that `orderflow up` runs elsewhere")
    wait = commands.add_parser("wait", help="return once a stack `orderflow up` runs is healthy")
    wait.add_argument("--timeout", type=float, default=180.0, help="seconds to wait at most")
    for command in (up, down, wait):
        command.add_argument(
            "--run-dir", type=Path, default=Path(".run"), help="where its logs and data go"
        )
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to become healthy")
    fault = commands.add_parser("fault", help="show, set or clear a service's fault flags")
    fault.add_argument("action", choices=["show", "set", "clear"])
    fault.add_argument("service", help="storefront, inventory, payments, fulfillment, ...")
    fault.add_argument("flags", nargs="*", metavar="FLAG=VALUE", help="e.g. error_rate=30")
    fault.add_argument(
        "--run-dir", type=Path, default=Path(".run"), help="the stack's, with its tokens"
    )
    bench_command = commands.add_parser("bench", help="the benchmarks (docs/load.md)")
    bench_command.add_argument("--out", type=Path, default=Path(".run/bench"))
    bench_command.add_argument("--baseline", type=Path, default=bench.BASELINE)
    bench_command.add_argument("--quick", action="store_true", help="short runs, for a try")
    bench_command.add_argument(
        "--sdk", action="store_true", help="only the per-call cost of the SDK against HTTP"
    )
    bench_command.add_argument(
        "--soak", action="store_true", help="the soak instead: memory, p99 and lost orders"
    )
    bench_command.add_argument(
        "--soak-rps", type=float, default=bench.Plan.soak_rps, help="the soak's orders a second"
    )
    bench_command.add_argument(
        "--compare", type=Path, metavar="RESULTS", help="compare this bench.json, run nothing"
    )
    status_command = commands.add_parser("status", help="where each entity of the spec stands")
    status_command.add_argument("--prometheus", default=f"http://{LOOPBACK}:{PROMETHEUS_PORT}")
    status_command.add_argument("--jaeger", default=f"http://{LOOPBACK}:{JAEGER_QUERY_PORT}")
    status_command.add_argument(
        "--kubeconfig",
        type=Path,
        default=CLUSTER_RUN_DIR / "kubeconfig",
        help="the local control plane's (`orderflow cluster up`), if it runs",
    )
    cluster_command = commands.add_parser(
        "cluster", help="the local Kubernetes control plane (docs/kubernetes.md)"
    )
    cluster_command.add_argument(
        "action", choices=["tools", "up", "down", "node-tools", "node", "node-down", "secrets"]
    )
    cluster_command.add_argument(
        "--context",
        default=os.environ.get("SKAFFOLD_KUBE_CONTEXT"),
        help="secrets: the kubectl context (default: skaffold's, else the current one)",
    )
    cluster_command.add_argument("--run-dir", type=Path, default=CLUSTER_RUN_DIR)
    cluster_command.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "cluster":
            if args.action == "secrets":
                return _cluster_secrets(args.context)
            return _cluster(args.action, args.run_dir, args.timeout)
        if args.command == "down":
            return _down(args.run_dir / PID_FILE)
        if args.command == "wait":
            return _wait(args.run_dir / PID_FILE, args.timeout)
        if args.command == "fault":
            return _fault(args.run_file, args.run_dir, args.action, args.service, args.flags)
        if args.command == "bench":
            return _bench(args)
        if args.command == "status":
            return _status(args.run_file, args.prometheus, args.jaeger, args.kubeconfig)
        tools = ensure_all(_note)
        if args.command == "tools":
            for name, path in vars(tools).items():
                print(f"{name:<13} {path}")
            return 0
        return _up(tools, args.run_file, args.run_dir, args.timeout)
    except (ToolError, runfile.RunFileError, resources.ResourceError, tokens.TokenError) as error:
        print(f"orderflow: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (StackError, cluster.ClusterError, k8s_secrets.SecretsError) as error:
        print(f"orderflow: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _fault(run_file: Path, run_dir: Path, action: str, service: str, assignments: list[str]) -> int:
    """Call storefront's token-guarded /faults routes with the local stack's token."""
    storefront = next(app for app in runfile.load(run_file) if app.app_id == "storefront")
    url = f"http://{LOOPBACK}:{storefront.app_port}/faults/{service}"
    flags: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            _note(f"{assignment!r} is not FLAG=VALUE")
            return EXIT_USAGE
        flags[name] = value
    if action != "set" and flags:
        _note(f"`fault {action}` takes no flags")
        return EXIT_USAGE
    headers = {"X-Fault-Token": tokens.load(run_dir).fault}
    try:
        if action == "show":
            response = httpx.get(url, headers=headers, timeout=10)
        elif action == "clear":
            response = httpx.delete(url, headers=headers, timeout=10)
        else:
            response = httpx.put(url, headers=headers, json=flags, timeout=10)
    except httpx.TransportError:
        _note(f"storefront is not answering at {url}: start the stack with `make up`")
        return EXIT_FAILURE
    if response.status_code != httpx.codes.OK:
        _note(f"{service}: {_reason(response)}")
        return EXIT_USAGE
    for name, value in response.json().items():
        print(f"{name:<12} {value}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    """Run every benchmark; write bench.json and bench.md; compare with the baseline."""
    out: Path = args.out
    baseline: Path = args.baseline
    if args.compare:
        return _bench_compare(args.compare, baseline)
    plan = bench.QUICK if args.quick else bench.Plan()
    started = time.monotonic()
    if args.sdk:
        figures = bench.run_sdk_path(ensure_all(_note), args.run_file.resolve(), out, _note)
        (out / "sdk.json").write_text(json.dumps(figures, indent=2) + "\n")
        print("\n".join(bench.sdk_path_table(figures)))
        _note(f"{time.monotonic() - started:.0f}s; wrote {out / 'sdk.json'}")
        return 0
    if args.soak:
        plan = dataclasses.replace(plan, soak_rps=args.soak_rps)
        soaked = bench.run_soak(ensure_all(_note), args.run_file.resolve(), out, plan, _note)
        report = bench.soak_report(soaked)
        (out / "soak.json").write_text(json.dumps(soaked, indent=2) + "\n")
        (out / "soak.md").write_text(report)
        print(report)
        _note(f"{time.monotonic() - started:.0f}s; wrote {out / 'soak.json'} and {out / 'soak.md'}")
        return 0
    results = bench.run_all(ensure_all(_note), args.run_file.resolve(), out, plan, _note)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report = bench.markdown(results)
    if baseline.exists():
        report += "\n" + bench.compare(results, json.loads(baseline.read_text()))
    (out / "bench.md").write_text(report)
    print(report)
    _note(f"{time.monotonic() - started:.0f}s; wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def _bench_compare(results: Path, baseline: Path) -> int:
    try:
        new, old = (json.loads(path.read_text()) for path in (results, baseline))
    except (OSError, ValueError) as error:
        _note(f"cannot read bench results: {error}")
        return EXIT_USAGE
    print(bench.compare(new, old))
    return 0


def _status(run_file: Path, prometheus: str, jaeger: str, kubeconfig: Path) -> int:
    with httpx.Client(timeout=10) as http:
        live = status.Status(run_file, prometheus, jaeger, http, kubeconfig)
        print(status.render(live.placements()))
    return 0


def _reason(response: httpx.Response) -> str:
    """The readable part of a 4xx answer: FastAPI's detail, or each field's complaint."""
    detail = response.json().get("detail")
    if isinstance(detail, list):
        return "; ".join(f"{error['loc'][-1]}: {error['msg']}" for error in detail)
    return str(detail)


def _note(message: str) -> None:
    print(f"orderflow: {message}", file=sys.stderr)


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


def _wait(pid_file: Path, timeout: float) -> int:
    """`orderflow up` writes its pid file once every process is healthy: wait for it, so
    that a script (or a lab) can start the stack in the background and go on when it is
    up. The default outlasts `up`'s own start-up timeout, so a stack that cannot start
    has said why in its own output before this gives up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(pid_file.read_text())
            os.kill(pid, 0)  # signal 0: is it alive? (a stale file is not a stack)
            print(f"the stack is up: every process healthy (orderflow up, pid {pid})")
            return 0
        time.sleep(0.2)
    _note(
        f"no healthy stack within {timeout:.0f}s (no live {pid_file}):"
        " is `make up` running? its output says why"
    )
    return EXIT_FAILURE


class _StopRequestedError(Exception):
    """Raised in the main thread by SIGINT or SIGTERM, wherever it is, to unwind to the
    stop; during start-up as much as afterwards."""


def _request_stop(signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError(signal.Signals(signum).name)


def _up(tools: Tools, run_file: Path, run_dir: Path, timeout: float) -> int:
    local = LocalStack(run_file.resolve(), run_dir.resolve(), tools, sys.stdout)

    def announce() -> None:
        for app_id in local.apps:
            _note(f"{app_id:<14} {local.app_url(app_id)}")
        _note(f"{'prometheus':<14} http://{LOOPBACK}:{PROMETHEUS_PORT}")
        _note(f"{'jaeger':<14} http://{LOOPBACK}:{JAEGER_QUERY_PORT}")

    return _serve(local, run_dir / PID_FILE, timeout, announce)


def _cluster_secrets(context: str | None) -> int:
    """The token Secrets the manifests name (k8s/secrets.py), made where missing."""
    created = k8s_secrets.ensure(k8s_secrets.kubectl_command(context))
    _note(f"created {', '.join(created)}" if created else "every token Secret exists already")
    return 0


def _cluster(action: str, run_dir: Path, timeout: float) -> int:
    if action.startswith("node"):
        return _node_cluster(action, timeout)
    if action == "down":
        return _down(run_dir / PID_FILE)
    tools = ensure_cluster_tools(_note)
    if action == "tools":
        for name, path in vars(tools).items():
            print(f"{name:<24} {path}")
        return 0
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "cluster.log").open("w") as log:
        local = cluster.LocalCluster(tools, run_dir, log)

        def announce() -> None:
            _note(f"logs in {run_dir / 'cluster.log'}; to use it:")
            print(f"export KUBECONFIG={local.kubeconfig}")
            print(f"export ORDERFLOW_DAPR_CHART={cluster.dapr_chart()}")
            _note(cluster.SIMULATED)

        return _serve(local, run_dir / PID_FILE, timeout, announce)


def _node_cluster(action: str, timeout: float) -> int:
    """`make cluster` without Docker: orderflow_devtools.node, in .run/node."""
    if action == "node-down":
        return _down(NODE_RUN_DIR / PID_FILE)
    tools = ensure_cluster_tools(_note)
    node_tools = ensure_node_tools(_note)
    if action == "node-tools":
        for name, path in [*vars(node_tools).items(), *node_tools.binaries.items()]:
            if name != "binaries":
                print(f"{name:<24} {path}")
        return 0
    run_dir = NODE_RUN_DIR.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    with (run_dir / "cluster.log").open("w") as log:
        served = node.NodeCluster(tools, node_tools, run_dir, log)

        def announce() -> None:
            _note(f"logs in {run_dir / 'cluster.log'}; to use it:")
            print(f"export KUBECONFIG={served.kubeconfig}")
            _note(f"images: push to {node.REGISTRY} from inside the namespace {node.NETNS}")

        return _serve(served, run_dir / PID_FILE, max(timeout, 300.0), announce)


class _Served(Protocol):
    stack: Stack

    def start(self, timeout: float) -> None: ...
    def stop(self) -> None: ...


def _serve(served: _Served, pid_file: Path, timeout: float, announce: Callable[[], None]) -> int:
    """Start, say where everything is, keep running until SIGINT or SIGTERM, stop."""
    started = time.monotonic()
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        served.start(timeout)
        pid_file.write_text(str(os.getpid()))
        count = len(served.stack.processes)
        _note(f"all {count} processes healthy in {time.monotonic() - started:.1f}s")
        announce()
        _note("press Ctrl-C to stop")
        reported: set[str] = set()
        while True:
            time.sleep(0.5)
            for name, code in served.stack.exited().items():
                if name not in reported:
                    reported.add(name)
                    _note(f"{name} exited with code {code}; the rest keeps running")
    except _StopRequestedError as stop:
        _note(f"{stop}: stopping")
    finally:
        # A second Ctrl-C must not cut the stop short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        served.stop()
        pid_file.unlink(missing_ok=True)
    _note("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
