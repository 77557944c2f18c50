"""The local stack: Redis, Jaeger, Prometheus, Dapr's sentry, and every app with its own
daprd sidecar, as processes on loopback.

`orderflow up` and the integration tests both use :class:`Stack`: it checks that every
port is free, starts the processes (each in its own process group, so that a stop reaches
any child a process starts too), prefixes each output line with the process's name, waits until
each answers its health check, and stops them all: SIGTERM, then SIGKILL after a grace
period. Once the local stack is up it is supervised: a process that dies without being
asked to, or fails its liveness probe, is started again after a backoff, as a Kubernetes
kubelet restarts a crashed container, and the log says so.
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil
import yaml

from orderflow_devtools import observe, resources, runfile, tokens
from orderflow_devtools.client import Endpoints
from orderflow_devtools.resources import Resources
from orderflow_devtools.runfile import App
from orderflow_devtools.tools import Tools

PROMETHEUS_PORT = 9090
JAEGER_QUERY_PORT = 16686
JAEGER_QUERY_GRPC_PORT = 16685
JAEGER_HEALTH_PORT = 13133
LOOPBACK = "127.0.0.1"
# storefront's setting (settings.py) for the services its fault admin API may set.
FAULT_SERVICES = "STOREFRONT_FAULT_SERVICES"
# The infrastructure processes, started (and healthy) before the apps that need them.
INFRA = ("redis", "jaeger", "prometheus", "sentry")
# The sidecars' namespace: part of each one's SPIFFE id (spiffe://public/ns/orderflow/<app
# id>), which the accessControl policies in deploy/dapr/access-control match; the
# Kubernetes namespace is the same, so the same policies serve both modes.
NAMESPACE = "orderflow"
# sentry's own identity, which the sidecars check: spiffe://localhost/ns/orderflow/dapr-sentry.
SENTRY_TRUST_DOMAIN = "localhost"
# sentry's ports, inside its own network namespace (sentry_process): nothing outside sees them.
SENTRY_GRPC_PORT = 50001
SENTRY_HEALTH_PORT = 8080


class StackError(Exception):
    """The stack cannot start or went wrong; the message is the one-line cause."""


Probe = Callable[[], bool]
# Told the pid of the running process: False when it is alive but stuck.
Liveness = Callable[[int], bool]


@dataclass
class Process:
    """A process the stack runs: how to start it and how to tell that it is ready."""

    name: str
    argv: list[str]
    cwd: Path
    ready: Probe
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    # Variables whose value is a file's content, read each time the process starts: a file
    # that another process of the stack writes first (sentry's trust anchors).
    env_files: dict[str, Path] = field(default_factory=dict)
    # Asked periodically while the stack is supervised (Supervision says how often and
    # how many failures in a row get the process killed and restarted), as a kubelet
    # does with a livenessProbe.
    # https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/
    alive: Liveness | None = None


@dataclass
class _Running:
    popen: subprocess.Popen[bytes]
    pump: threading.Thread
    tail: deque[str]
    started: float
    # How many times in a row the supervisor has had to start it (0: started by hand).
    attempt: int
    # When its liveness is checked next, and how many checks in a row it failed.
    next_check: float = 0.0
    failures: int = 0


@dataclass(frozen=True)
class Supervision:
    """How the supervisor spaces the restarts of a process that keeps dying: ``first``
    seconds, doubling up to ``most``, the kubelet's CrashLoopBackOff in small. A process
    that stayed up ``stable`` seconds before it died starts again from ``first``. A
    process with a liveness probe is asked every ``liveness_period`` seconds, and killed
    (then restarted as above) after ``liveness_failures`` failures in a row."""

    first: float = 1.0
    most: float = 10.0
    stable: float = 60.0
    liveness_period: float = 10.0
    liveness_failures: int = 3

    def delay(self, attempt: int) -> float:
        return min(self.first * 2.0 ** (attempt - 1), self.most)


class Stack:
    def __init__(self, processes: Sequence[Process], out: IO[str]) -> None:
        self.processes = {process.name: process for process in processes}
        self._out = out
        self._out_lock = threading.Lock()
        # Guards what the supervisor thread shares: everything below but _supervisor.
        self._lock = threading.RLock()
        self._running: dict[str, _Running] = {}
        self._starting: set[str] = set()
        self._restarts: dict[str, int] = {}
        # Processes that died, with when the supervisor starts each again and the
        # attempt that will be.
        self._due: dict[str, tuple[float, int]] = {}
        # Restarted processes not yet healthy again, with when they died.
        self._recovering: dict[str, float] = {}
        self._supervisor: threading.Thread | None = None
        self._closing = threading.Event()

    def check_ports(self, names: Iterable[str]) -> None:
        for name in names:
            for purpose, port in self.processes[name].ports.items():
                if not port_is_free(port):
                    raise StackError(
                        f"port {port} ({purpose}) is already in use on {LOOPBACK}:"
                        f" stop what holds it (`ss -ltnp 'sport = :{port}'`) or change its port"
                    )

    def start(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Start ``names`` and return once every one is ready."""
        self.check_ports(names)
        with self._lock:
            for name in names:
                self._due.pop(name, None)
                self._recovering.pop(name, None)
                self._starting.add(name)
                self._spawn(self.processes[name])
        try:
            self.wait_ready(names, timeout)
        finally:
            with self._lock:
                self._starting.difference_update(names)

    def wait_ready(self, names: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                with self._lock:
                    code = self._running[name].popen.poll()
                if code is not None:
                    raise StackError(
                        f"{name} exited with code {code} while starting; its last line: "
                        f"{self.last_line(name)}"
                    )
                if self.processes[name].ready():
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise StackError(
                    f"not healthy after {timeout:.0f}s: {', '.join(pending)}; last line of "
                    f"{pending[0]}: {self.last_line(pending[0])}"
                )
            if pending:
                time.sleep(0.05)

    def supervise(self, policy: Supervision | None = None) -> None:
        """From now on, start again whatever dies without :meth:`stop` or :meth:`kill`
        asking it to, and whatever fails its liveness probe; until :meth:`stop` stops
        everything."""
        self._supervisor = threading.Thread(
            target=self._supervise, args=(policy or Supervision(),), name="supervisor"
        )
        self._supervisor.start()

    def restarts(self, name: str) -> int:
        """How many times the supervisor has started ``name`` again."""
        with self._lock:
            return self._restarts.get(name, 0)

    def stop(self, names: Iterable[str] | None = None, grace: float = 10.0) -> None:
        """SIGTERM each process group, then SIGKILL what is left after ``grace`` seconds."""
        if names is None and self._supervisor is not None:
            self._closing.set()
            self._supervisor.join()
            self._supervisor = None
        with self._lock:
            # Out of the supervisor's sight before any signal: a stop is no crash.
            chosen = list(self._running) if names is None else list(names)
            for name in chosen:
                self._due.pop(name, None)
                self._recovering.pop(name, None)
            stopping = {name: self._running.pop(name) for name in chosen if name in self._running}
        for running in stopping.values():
            _signal_group(running.popen, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, running in stopping.items():
            try:
                running.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(name, f"still running after {grace:.0f}s: killing it")
            # Whatever the leader did, nothing of its group outlives the stop.
            _signal_group(running.popen, signal.SIGKILL)
            running.popen.wait()
            running.pump.join()

    def kill(self, name: str) -> None:
        """SIGKILL ``name``'s whole process group, as a crash would, and leave it down
        (the supervisor does not restart it: :meth:`LocalStack.restart` does)."""
        with self._lock:
            running = self._running.pop(name)
        _signal_group(running.popen, signal.SIGKILL)
        running.popen.wait()
        running.pump.join()

    def exited(self) -> dict[str, int]:
        """The processes that have ended on their own and that nothing restarts, with
        their exit codes (none once :meth:`supervise` runs)."""
        if self._supervisor is not None:
            return {}
        with self._lock:
            return {
                name: code
                for name, running in self._running.items()
                if (code := running.popen.poll()) is not None
            }

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {name: running.popen.pid for name, running in self._running.items()}

    def last_line(self, name: str) -> str:
        with self._lock:
            tail = self._running[name].tail if name in self._running else None
        return tail[-1] if tail else "(no output)"

    def lines(self, name: str) -> list[str]:
        with self._lock:
            return list(self._running[name].tail)

    def _supervise(self, policy: Supervision) -> None:
        while not self._closing.wait(0.2):
            now = time.monotonic()
            with self._lock:
                died = [
                    (name, running, code)
                    for name, running in self._running.items()
                    if name not in self._starting and (code := running.popen.poll()) is not None
                ]
                for name, _, _ in died:
                    del self._running[name]
            for name, running, code in died:
                # The leader is gone; nothing it started may hold the ports or the pipe.
                _signal_group(running.popen, signal.SIGKILL)
                running.pump.join()
                uptime = now - running.started
                attempt = 1 if uptime >= policy.stable else running.attempt + 1
                delay = policy.delay(attempt)
                with self._lock:
                    self._due[name] = (now + delay, attempt)
                    self._recovering[name] = now
                self._say(
                    name,
                    f"orderflow: exited with code {code} after {uptime:.1f}s;"
                    f" restarting it in {delay:g}s (attempt {attempt})",
                )
            with self._lock:
                for name, (when, attempt) in list(self._due.items()):
                    if when <= now:
                        del self._due[name]
                        self._restarts[name] = self._restarts.get(name, 0) + 1
                        self._spawn(self.processes[name], attempt)
                        pid = self._running[name].popen.pid
                        self._say(name, f"orderflow: restarted (pid {pid})")
                recovering = [
                    (name, died_at)
                    for name, died_at in self._recovering.items()
                    if name in self._running
                ]
            for name, died_at in recovering:
                if self.processes[name].ready():
                    with self._lock:
                        self._recovering.pop(name, None)
                    self._say(
                        name,
                        f"orderflow: healthy again {time.monotonic() - died_at:.1f}s after it died",
                    )
            self._check_liveness(now, policy)

    def _check_liveness(self, now: float, policy: Supervision) -> None:
        with self._lock:
            due = [
                (name, running, alive)
                for name, running in self._running.items()
                if (alive := self.processes[name].alive) is not None
                and name not in self._starting
                and name not in self._recovering
                and now >= running.next_check
            ]
        for name, running, alive in due:
            running.next_check = now + policy.liveness_period
            if alive(running.popen.pid):
                running.failures = 0
                continue
            running.failures += 1
            self._say(
                name,
                f"orderflow: liveness check failed ({running.failures} of"
                f" {policy.liveness_failures})",
            )
            if running.failures >= policy.liveness_failures:
                self._say(name, "orderflow: not live: killing it, to be restarted")
                # The next round sees it dead and restarts it like any crash.
                _signal_group(running.popen, signal.SIGKILL)

    def _spawn(self, process: Process, attempt: int = 0) -> None:
        popen = subprocess.Popen(
            process.argv,
            cwd=process.cwd,
            env={
                **os.environ,
                **process.env,
                **{name: path.read_text() for name, path in process.env_files.items()},
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tail: deque[str] = deque(maxlen=500)
        pump = threading.Thread(
            target=self._pump, args=(process.name, popen, tail), name=f"log-{process.name}"
        )
        pump.start()
        self._running[process.name] = _Running(popen, pump, tail, time.monotonic(), attempt)

    def _pump(self, name: str, popen: subprocess.Popen[bytes], tail: deque[str]) -> None:
        if popen.stdout is None:
            return
        with popen.stdout:
            for raw in popen.stdout:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                self._say(name, line)

    def _say(self, name: str, line: str) -> None:
        width = max(len(name) for name in self.processes)
        with self._out_lock:
            self._out.write(f"{name:<{width}} | {line}\n")
            self._out.flush()


def _signal_group(popen: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signum)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers bind with SO_REUSEADDR, so connections left in TIME_WAIT by an earlier
        # run do not block them; only a live listener does, and only that should stop us.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _http_ok(url: str, expected: int = 200) -> Probe:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == expected
        except httpx.TransportError:
            return False

    return probe


class SidecarLiveness:
    """A daprd's liveness: it fails when the sidecar kept at least half a core busy
    through a whole period in which it did no work (served no API call, delivered and
    published no event). An idle daprd uses about 1% of a core.

    That is what Dapr 1.18.2's transactional outbox does after a Redis outage of more
    than ~20 s: its handler retries the state read (and the delete) with a
    ``backoff.ExponentialBackOff`` built without its ``Stop`` field
    (pkg/runtime/pubsub/outbox.go), so past ``MaxElapsedTime`` (10 s) cenkalti/backoff
    v4 retries at once instead of giving up (cenkalti/backoff#120), on a message context
    that has expired by then (the component's processingTimeout): every outbox message
    that was in flight when Redis went away spins at full speed for good and is never
    acknowledged. Another worker redelivers it, so events still go out, but the sidecar
    burns the machine's CPU until it is restarted. docs/resiliency.md, "Recovery".
    """

    BUSY_CORES = 0.5
    WORK = (
        "dapr_http_server_request_count",
        "dapr_grpc_io_server_completed_rpcs",
        "dapr_component_pubsub_ingress_count",
        "dapr_component_pubsub_egress_count",
    )

    def __init__(self, metrics_url: str) -> None:
        self._metrics_url = metrics_url
        # The last sample: the pid it was of, when, CPU seconds used, work done.
        self._last: tuple[int, float, float, float] | None = None

    def __call__(self, pid: int) -> bool:
        try:
            times = psutil.Process(pid).cpu_times()
            work = observe.metrics(self._metrics_url, self.WORK, timeout=2.0)
        except (psutil.Error, httpx.HTTPError):
            # Not answering its metrics within 2 s is not live either.
            self._last = None
            return False
        now, cpu = time.monotonic(), times.user + times.system
        last, self._last = self._last, (pid, now, cpu, work)
        if last is None or last[0] != pid:
            return True
        _, then, cpu_then, work_then = last
        busy = (cpu - cpu_then) / (now - then)
        return work != work_then or busy < self.BUSY_CORES


def _redis_ping(port: int) -> Probe:
    def probe() -> bool:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return probe


class LocalStack:
    """The whole local stack as ``dapr.yaml`` (beside ``deploy/``) describes it."""

    def __init__(
        self,
        run_file: Path,
        run_dir: Path,
        tools: Tools,
        out: IO[str],
        secrets_dir: Path | None = None,
    ) -> None:
        """``secrets_dir`` holds the tokens (tokens.py), the run directory unless said."""
        apps = runfile.load(run_file)
        self.apps = {app.app_id: app for app in apps}
        dapr_resources = resources.load(apps[0].resources_path, apps[0].config_file)
        self.redis_port = dapr_resources.redis_port
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.tokens = tokens.ensure(secrets_dir or run_dir, list(self.apps))
        processes = local_processes(
            run_file.parent, run_dir, tools, apps, dapr_resources, secrets=self.tokens
        )
        self.stack = Stack(processes, out)

    def start(self, timeout: float) -> None:
        """Check every port first, then start the infrastructure, then the apps."""
        self.stack.check_ports(self.stack.processes)
        self.stack.start(INFRA, timeout)
        self.stack.start([name for name in self.stack.processes if name not in INFRA], timeout)
        self.stack.supervise()

    def stop(self) -> None:
        self.stack.stop()

    def app_url(self, app_id: str) -> str:
        return f"http://{LOOPBACK}:{self.apps[app_id].app_port}"

    def dapr_url(self, app_id: str) -> str:
        return f"http://{LOOPBACK}:{self.apps[app_id].dapr_http_port}"

    def metrics_url(self, app_id: str) -> str:
        return f"http://{LOOPBACK}:{self.apps[app_id].metrics_port}/metrics"

    def endpoints(self) -> Endpoints:
        return Endpoints(
            apps={app_id: self.app_url(app_id) for app_id in self.apps},
            fault_token=self.tokens.fault,
            app_tokens=self.tokens.app_api,
        )

    def restart(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Start again what :meth:`Stack.kill` or :meth:`Stack.stop` ended."""
        self.stack.start(names, timeout)


def local_processes(
    repo: Path,
    run_dir: Path,
    tools: Tools,
    apps: Sequence[App],
    resources: Resources,
    *,
    secrets: tokens.Tokens,
) -> list[Process]:
    """Every process of the local stack, infrastructure first, with their tokens."""
    redis_port = resources.redis_port
    otlp_port = resources.otlp_grpc_port
    prometheus_config = _prometheus_config(repo, run_dir, apps)
    dapr_configs = _dapr_configs(run_dir, apps, resources)
    sentry = Sentry.under(run_dir)
    (run_dir / "redis").mkdir(parents=True, exist_ok=True)
    infra = [
        Process(
            name="redis",
            argv=[
                str(tools.redis_server),
                *("--bind", LOOPBACK, "--port", str(redis_port)),
                *("--dir", str(run_dir / "redis"), "--save", ""),
                # Append-only: Redis writes each change to the file before it answers,
                # so an order storefront accepted survives a killed Redis process (the
                # kernel holds the write). The file is fsynced once a second, not per
                # write: "always" cost several serial fsyncs per order and guards only
                # against the machine itself crashing (and, rarely, a Redis crash while
                # a slow fsync makes it hold writes back, at most 2 s of them: aof.c,
                # flushAppendOnlyFile), which a local stack can afford.
                # https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
                *("--appendonly", "yes", "--appendfsync", "everysec"),
                # The Dapr configuration store learns of changed fault flags from
                # keyspace notifications, which Redis sends only when asked to.
                *("--notify-keyspace-events", "KA"),
            ],
            cwd=run_dir,
            ready=_redis_ping(redis_port),
            ports={"redis": redis_port},
        ),
        Process(
            name="jaeger",
            argv=[str(tools.jaeger), f"--config={repo / 'deploy/monitoring/jaeger.yaml'}"],
            cwd=run_dir,
            ready=_http_ok(f"http://{LOOPBACK}:{JAEGER_HEALTH_PORT}/status"),
            ports={
                "jaeger OTLP gRPC": otlp_port,
                "jaeger query": JAEGER_QUERY_PORT,
                "jaeger query gRPC": JAEGER_QUERY_GRPC_PORT,
                "jaeger health": JAEGER_HEALTH_PORT,
            },
            env={
                "JAEGER_OTLP_GRPC_ENDPOINT": f"{LOOPBACK}:{otlp_port}",
                "JAEGER_QUERY_ENDPOINT": f"{LOOPBACK}:{JAEGER_QUERY_PORT}",
                "JAEGER_QUERY_GRPC_ENDPOINT": f"{LOOPBACK}:{JAEGER_QUERY_GRPC_PORT}",
                "JAEGER_HEALTH_ENDPOINT": f"{LOOPBACK}:{JAEGER_HEALTH_PORT}",
            },
        ),
        Process(
            name="prometheus",
            argv=[
                str(tools.prometheus),
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
                f"--web.listen-address={LOOPBACK}:{PROMETHEUS_PORT}",
                # Trace ids on latency histograms reach Prometheus only with this on.
                # https://prometheus.io/docs/prometheus/latest/feature_flags/#exemplars-storage
                "--enable-feature=exemplar-storage",
            ],
            cwd=run_dir,
            ready=_http_ok(f"http://{LOOPBACK}:{PROMETHEUS_PORT}/-/ready"),
            ports={"prometheus": PROMETHEUS_PORT},
        ),
        sentry_process(repo, sentry, tools),
    ]
    services: list[Process] = []
    for app in apps:
        services.append(
            Process(
                name=app.app_id,
                argv=list(app.command),
                cwd=app.directory,
                ready=_http_ok(f"http://{LOOPBACK}:{app.app_port}{app.health_check_path}"),
                ports={f"{app.app_id} app": app.app_port},
                env={**app.app_env(), **_app_tokens(secrets, app.app_id, apps)},
            )
        )
        services.append(
            Process(
                name=f"{app.app_id}-dapr",
                argv=[
                    str(tools.daprd),
                    *app.model_copy(update={"config_file": dapr_configs[app.app_id]}).daprd_args(),
                    *mtls_flags(sentry),
                ],
                cwd=repo,
                # 204 once components are loaded and the app answers its health check.
                # https://docs.dapr.io/reference/api/health_api/
                ready=_http_ok(f"http://{LOOPBACK}:{app.dapr_http_port}/v1.0/healthz", 204),
                ports=app.sidecar_ports(),
                # The namespace of the sidecar's SPIFFE id, and the CA it trusts: the
                # root sentry generated on its first start.
                # https://docs.dapr.io/operations/security/mtls/#self-hosted
                env={**app.env, **secrets.pair(app.app_id), "NAMESPACE": NAMESPACE},
                env_files={"DAPR_TRUST_ANCHORS": sentry.trust_anchors},
                alive=SidecarLiveness(f"http://{LOOPBACK}:{app.metrics_port}/metrics"),
            )
        )
    return infra + services


def _app_tokens(secrets: tokens.Tokens, app_id: str, apps: Sequence[App]) -> dict[str, str]:
    """What an app is given of the stack's tokens (tokens.py): the pair it shares with its
    sidecar, and for storefront the fault admin token, without which it has no /faults
    routes, with the services those routes may set: the registry's (dapr.yaml). Its
    sidecar gets the pair only."""
    if app_id != "storefront":
        return secrets.pair(app_id)
    services = json.dumps([app.app_id for app in apps])
    return {**secrets.pair(app_id), tokens.FAULT_TOKEN: secrets.fault, FAULT_SERVICES: services}


@dataclass(frozen=True)
class Sentry:
    """Where the local sentry keeps its CA and where the sidecars reach it."""

    # Its root certificate (ca.crt: the trust anchors), issuer certificate and key, which it
    # generates on its first start and reuses from then on.
    credentials: Path
    # Its gRPC API, as a Unix socket in a directory only this user may enter.
    socket: Path

    @classmethod
    def under(cls, run_dir: Path) -> "Sentry":
        return cls(run_dir / "sentry", run_dir / "sentry-socket" / "sentry.sock")

    @property
    def trust_anchors(self) -> Path:
        return self.credentials / "ca.crt"


def sentry_process(repo: Path, sentry: Sentry, tools: Tools) -> Process:
    """Dapr's sentry, the CA that gives each sidecar its mTLS certificate, in a network
    namespace of its own, whose gRPC API socat carries out through a Unix socket.

    Sentry 1.18.2 binds its health server to every interface whatever
    --healthz-listen-address says (cmd/sentry/app/app.go passes no address to
    pkg/healthz/server, which listens on ":port"). In a new network namespace the only
    interface is loopback and there is no route, so that listener, and sentry's gRPC one,
    are out of every other process's reach; daprd dials the socket
    (``--sentry-address=unix://...``, a target gRPC resolves itself). In standalone mode
    sentry signs whatever app id a sidecar asks for (its "insecure" validator): the socket
    directory's 0700 is what limits who may ask.
    https://docs.dapr.io/concepts/dapr-services/sentry/
    https://man7.org/linux/man-pages/man7/network_namespaces.7.html
    """
    sentry.credentials.mkdir(mode=0o700, parents=True, exist_ok=True)
    sentry.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sentry.socket.parent.chmod(0o700)
    # Without root, a user namespace lets the network namespace be made.
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    # The namespace starts with its loopback down. socat runs beside sentry in it, one
    # connection each (fork); unlink-early removes a socket a killed run left behind.
    script = (
        'ip link set lo up || exit 1; "$0" "UNIX-LISTEN:$1,fork,mode=600,unlink-early"'
        f' TCP:{LOOPBACK}:{SENTRY_GRPC_PORT} & shift; exec "$@"'
    )
    serving = _sentry_serves(sentry)
    return Process(
        name="sentry",
        argv=[
            "unshare",
            "--net",
            *user,
            "--",
            "sh",
            "-c",
            script,
            str(tools.socat),
            str(sentry.socket),
            str(tools.sentry),
            # Its own settings (the workload certificates' lifetime), a Configuration file
            # in self-hosted mode.
            f"--config={repo / 'deploy/dapr/sentry/daprsystem.yaml'}",
            f"--issuer-credentials={sentry.credentials}",
            f"--trust-domain={SENTRY_TRUST_DOMAIN}",
            f"--listen-address={LOOPBACK}",
            f"--port={SENTRY_GRPC_PORT}",
            f"--healthz-port={SENTRY_HEALTH_PORT}",
            "--enable-metrics=false",
        ],
        cwd=repo,
        ready=serving,
        # No TCP port outside its namespace: nothing to check before it starts.
        ports={},
        # The namespace part of its own SPIFFE id.
        env={"NAMESPACE": NAMESPACE},
        # socat dying alone would leave sentry up but unreachable: the socket is the check.
        alive=lambda _pid: serving(),
    )


def _sentry_serves(sentry: Sentry) -> Probe:
    """True once a TLS handshake through the socket reaches sentry with a certificate of
    its own root: it has its CA and serves (gRPC insists on ALPN h2)."""

    def probe() -> bool:
        if not sentry.trust_anchors.exists():
            return False
        context = ssl.create_default_context(cafile=str(sentry.trust_anchors))
        # Its certificate names a SPIFFE id, not a host.
        context.check_hostname = False
        context.set_alpn_protocols(["h2"])
        try:
            with socket.socket(socket.AF_UNIX) as raw:
                raw.settimeout(1.0)
                raw.connect(str(sentry.socket))
                with context.wrap_socket(raw):
                    return True
        except OSError:
            return False

    return probe


def mtls_flags(sentry: Sentry) -> list[str]:
    """daprd's flags for mTLS between the sidecars, with certificates from ``sentry``; the
    callee's accessControl policy can then tell who calls (Dapr reads the caller's app id
    from its certificate). https://docs.dapr.io/operations/security/mtls/"""
    return [
        "--enable-mtls",
        f"--sentry-address=unix://{sentry.socket}",
        # Whom it expects to find at that address.
        f"--control-plane-trust-domain={SENTRY_TRUST_DOMAIN}",
        f"--control-plane-namespace={NAMESPACE}",
    ]


def _dapr_configs(run_dir: Path, apps: Sequence[App], resources: Resources) -> dict[str, Path]:
    """Each app's Dapr Configuration: the committed one with a name resolver that needs no
    network, and the app's own accessControl policy (deploy/dapr/access-control), if it has
    one, in place of the shared default-deny. Dapr applies the policy of the sidecar that
    is called, so only the apps that others call need one.
    https://docs.dapr.io/operations/configuration/invoke-allowlist/

    Self-hosted daprd resolves app ids with mDNS by default, which listens on UDP
    0.0.0.0:5353 and multicasts on every interface. Locally every sidecar is on
    127.0.0.1 at the internal gRPC port dapr.yaml gives it, so a fixed table does the same
    with no listener: the Kubernetes resolver (compiled with -tags stablecomponents, like
    mDNS) formats an address from a Go template instead of asking anyone, and an IP
    literal needs no DNS lookup. An app id not in the table fails the template, so the
    invocation fails with that cause. Kubernetes keeps its own DNS-based default.
    https://docs.dapr.io/reference/components-reference/supported-name-resolution/nr-kubernetes/
    """

    def action(text: str) -> str:
        return "{{" + text + "}}"

    # 127.0.0.1:{{if eq .ID "storefront"}}3521{{else}}{{if eq .ID "inventory"}}3522...
    cases = "".join(
        action(f'if eq .ID "{app.app_id}"') + str(app.dapr_internal_grpc_port) + action("else")
        for app in apps
    )
    template = f"{LOOPBACK}:{cases}{action('.UnknownAppID')}{action('end') * len(apps)}"
    config = yaml.safe_load(apps[0].config_file.read_text())
    config["spec"]["nameResolution"] = {
        "component": "kubernetes",
        "configuration": {"template": template},
    }
    directory = run_dir / "dapr-config"
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for app in apps:
        own = resources.access_control.get(app.app_id)
        merged = (
            config
            if own is None
            else {**config, "metadata": own["metadata"], "spec": {**config["spec"], **own["spec"]}}
        )
        path = directory / f"{app.app_id}.yaml"
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
        paths[app.app_id] = path
    return paths


def _prometheus_config(repo: Path, run_dir: Path, apps: Sequence[App]) -> Path:
    """Copy the committed Prometheus config beside target lists made from the run file,
    so that the ports live in one place (dapr.yaml): each app, and each app's sidecar."""
    config_dir = run_dir / "prometheus-config"
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(repo / "deploy" / "monitoring", config_dir)
    ports = {
        "apps.json": {app.app_id: app.app_port for app in apps},
        "sidecars.json": {app.app_id: app.metrics_port for app in apps},
    }
    for file, by_app in ports.items():
        targets = [
            {"targets": [f"{LOOPBACK}:{port}"], "labels": {"app_id": app_id}}
            for app_id, port in by_app.items()
        ]
        (config_dir / file).write_text(json.dumps(targets, indent=2))
    return config_dir / "prometheus.yml"
