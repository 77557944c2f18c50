"""``orderflow bench``: how fast and how light orderflow is on this machine, measured the
way a user's laptop runs it, and set against the figures Dapr publishes.

What it runs (docs/load.md has the table and how to read it):

1. Orders end to end, ``POST /orders`` at fixed rates of at least 60 s each, stepping up
   until the stack falls behind, with ``FULFILLMENT_WORK_MS=0`` and full telemetry
   (every request traced, every app and sidecar scraped). For each step: latency from
   each request's scheduled send time; placed→notified from each order's own history;
   the CPU of every process of the stack, from the first request until the last order of
   the step is notified, less what the stack uses idle; PSS memory; the generator's own
   CPU; the busiest process.
2. The same orders with the default ``FULFILLMENT_WORK_MS`` (the autoscaling demo's CPU
   work per order): where that stack saturates, and which process first.
3. Telemetry off (sidecars' tracing and metrics off, ``OTEL_SDK_DISABLED`` in the apps)
   at the rate the comparison step of (1) ran, on a stack of its own.
4. Service invocation and publish overhead: the same requests straight to inventory and
   through two sidecars; a Dapr publish beside a direct Redis ``XADD``.
5. Start time of the whole stack, cold and warm.

The stack runs on both CPUs, as it would on a laptop, and so does the load generator:
Locust (one ``FastHttpUser``, open loop, loadtest/.../locustfiles/bench.py) in a process
of its own, whose CPU is measured and reported, never hidden in the stack's.
``orderflow bench --soak`` runs the 10-minute soak instead (memory growth, p99 over time,
lost orders).
https://docs.dapr.io/operations/performance-and-scalability/perf-service-invocation/
"""

import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import httpx
import psutil
import redis
import yaml
from pydantic import SecretStr

from orderflow_common import sidecar
from orderflow_common.settings import ServiceSettings
from orderflow_common.telemetry import Telemetry
from orderflow_devtools import resources, runfile
from orderflow_devtools.stack import INFRA, LocalStack, Stack, local_processes
from orderflow_devtools.tools import Tools

BASELINE = Path("loadtest/baseline.json")
# Dapr v1.17's published figures (HTTP service invocation, 1 KB, 1,000 rps):
# https://docs.dapr.io/operations/performance-and-scalability/perf-service-invocation/
ANCHOR_ADDED_MS = {"p50": 1.06, "p90": 1.48, "p99": 2.90}
ANCHOR_SIDECAR_VCPU_AT_1000_RPS = 0.2
ANCHOR_SIDECAR_MB = 51.0
# A step is sustained when every order succeeds, the rate is held, every order is
# notified, and POST /orders keeps a p99 under this (the service level of this bench).
SATURATION_P99_MS = 1000.0
# The targets the report checks (docs/load.md).
TARGETS = {
    "sustained_rps": 100.0,
    "post_orders_p99_ms": 50.0,
    "cpu_ms_per_order": 15.0,
    "placed_to_notified_p50_s": 1.3,
    "placed_to_notified_p99_s": 2.0,
    "idle_pss_mib": 600.0,
    "load_pss_mib": 900.0,
}
SAMPLE_SECONDS = 0.5
PSS_EVERY_SAMPLES = 10  # PSS every 5 s: reading it walks every process's page tables
# The stack counts as settled when a second of it uses at most this much CPU above idle.
SETTLED_ABOVE_IDLE = 0.1
SETTLE_AT_MOST_SECONDS = 60.0


@dataclass(frozen=True)
class Plan:
    """Rates and durations; the defaults take 10 to 25 minutes on 2 CPUs, depending on
    how far the stack keeps up."""

    order_rates: tuple[float, ...] = (10, 25, 50, 75, 100, 125, 150)
    step_seconds: float = 60.0
    # The step that telemetry off and placed→notified are compared at.
    compare_rps: float = 50.0
    work_rates: tuple[float, ...] = (10, 25, 40, 55, 70)
    invoke_rps: float = 200.0
    invoke_seconds: float = 20.0
    idle_seconds: float = 10.0
    warmup_seconds: float = 5.0
    soak_rps: float = 50.0
    soak_seconds: float = 600.0


QUICK = Plan(
    order_rates=(25, 50, 100),
    step_seconds=15,
    work_rates=(25,),
    invoke_seconds=6,
    idle_seconds=5,
    warmup_seconds=2,
    soak_seconds=60,
)


# Processes: what the stack runs, and what it costs.


def _groups(local: LocalStack) -> dict[str, list[psutil.Process]]:
    """Each process of the stack with its children (an app started through a wrapper
    such as ``uv run`` is the wrapper's child)."""
    groups = {}
    for name, pid in local.stack.pids().items():
        leader = psutil.Process(pid)
        groups[name] = [leader, *leader.children(recursive=True)]
    return groups


def _cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _pss_mib(processes: Sequence[psutil.Process]) -> float:
    """Proportional set size: each shared page (one daprd binary for five sidecars,
    libpython for five apps) counted once across the processes sharing it, unlike RSS.
    https://docs.kernel.org/filesystems/proc.html (smaps_rollup)"""
    kib = 0
    for process in processes:
        with contextlib.suppress(OSError, psutil.NoSuchProcess):
            for line in Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kib += int(line.split()[1])
    return kib / 1024


def _busy_cpu_seconds() -> float:
    """CPU-seconds the whole machine spent working, since boot (guest time is in user)."""
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq


@dataclass
class Sample:
    at: float  # wall clock, comparable with the orders' history timestamps
    cpu: dict[str, float]  # cumulative CPU-seconds per process of the stack
    machine: float
    pss: dict[str, float] | None


class Sampler:
    """Samples every process's CPU (and now and then its PSS) in a thread, so that the
    CPU of any moment can be read afterwards: the start of a step, or the moment its last
    order was notified."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        count = 0
        while not self._stop.is_set():
            self.samples.append(self.take(with_pss=count % PSS_EVERY_SAMPLES == 0))
            count += 1
            self._stop.wait(SAMPLE_SECONDS)

    def take(self, *, with_pss: bool) -> Sample:
        return Sample(
            at=time.time(),
            cpu={name: _cpu_seconds(group) for name, group in self.groups.items()},
            machine=_busy_cpu_seconds(),
            pss={name: _pss_mib(group) for name, group in self.groups.items()}
            if with_pss
            else None,
        )

    def at(self, moment: float) -> Sample:
        """The sample at ``moment``, interpolated between the two around it."""
        samples = self.samples
        if not samples:
            raise ValueError("no samples taken")
        if moment <= samples[0].at:
            return samples[0]
        for before, after in itertools.pairwise(samples):
            if before.at <= moment <= after.at:
                share = (moment - before.at) / ((after.at - before.at) or 1.0)
                return Sample(
                    at=moment,
                    cpu={
                        name: value + share * (after.cpu[name] - value)
                        for name, value in before.cpu.items()
                    },
                    machine=before.machine + share * (after.machine - before.machine),
                    pss=None,
                )
        return samples[-1]

    def peak_pss(self, start: float, end: float) -> dict[str, float]:
        """Each process's largest PSS between ``start`` and ``end``."""
        peaks: dict[str, float] = {}
        for sample in self.samples:
            if sample.pss is not None and start <= sample.at <= end:
                for name, mib in sample.pss.items():
                    peaks[name] = max(peaks.get(name, 0.0), mib)
        return peaks


def _rates(earlier: Sample, later: Sample) -> dict[str, float]:
    """CPUs each process used on average between two samples."""
    seconds = (later.at - earlier.at) or 1.0
    return {name: (later.cpu[name] - value) / seconds for name, value in earlier.cpu.items()}


async def _idle(sampler: Sampler, seconds: float) -> dict[str, float]:
    """CPUs each process uses with no requests (health probes, scrapes, stream polls)."""
    before = sampler.take(with_pss=False)
    await asyncio.sleep(seconds)
    return _rates(before, sampler.take(with_pss=False))


async def _settle(sampler: Sampler, idle: dict[str, float], deadline: float) -> float:
    """Wait until three seconds in a row each use at most idle + 0.1 CPU (the events an
    earlier step left queued have been handled) or ``deadline``; return the time then."""
    quiet = 0
    idle_total = sum(idle.values())
    while time.time() < deadline and quiet < 3:
        before = sampler.take(with_pss=False)
        await asyncio.sleep(1.0)
        used = sum(_rates(before, sampler.take(with_pss=False)).values())
        quiet = quiet + 1 if used <= idle_total + SETTLED_ABOVE_IDLE else 0
    return time.time()


# The load generator.


def _locustfile() -> Path:
    spec = importlib.util.find_spec("orderflow_loadtest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("orderflow-loadtest is not installed: run `uv sync`")
    return Path(next(iter(spec.submodule_search_locations))) / "locustfiles" / "bench.py"


@dataclass
class Load:
    """What the generator sent, as its results file says, and what it cost."""

    rate: float
    seconds: float
    due_from: float
    requests: list[tuple[float, float, float, bool, str]]
    unanswered: int
    generator_cpu_s: float

    @property
    def due_until(self) -> float:
        return self.due_from + self.seconds

    @property
    def ok(self) -> list[tuple[float, float, float, bool, str]]:
        return [request for request in self.requests if request[3]]

    @property
    def errors(self) -> int:
        return len(self.requests) - len(self.ok) + self.unanswered

    def latencies_ms(self, *, from_schedule: bool = True) -> list[float]:
        return [
            (answered - (due if from_schedule else sent)) * 1000
            for due, sent, answered, _, _ in self.ok
        ]

    def p99_by_minute(self) -> list[float]:
        """POST /orders p99 of each minute of the schedule (requests by their due time)."""
        minutes: dict[int, list[float]] = {}
        for due, _, done, _, _ in self.ok:
            minutes.setdefault(int((due - self.due_from) // 60), []).append((done - due) * 1000)
        return [_percentile(minutes[minute], 0.99) for minute in sorted(minutes)]

    def summary(self) -> dict[str, Any]:
        scheduled = self.latencies_ms()
        sent = self.latencies_ms(from_schedule=False)
        last_answer = max((request[2] for request in self.ok), default=self.due_until)
        return {
            "target_rps": self.rate,
            "sent": len(self.requests) + self.unanswered,
            "ok": len(self.ok),
            "errors": self.errors,
            "achieved_rps": round(len(self.ok) / max(last_answer - self.due_from, 1e-9), 2),
            "p50_ms": _percentile(scheduled, 0.50),
            "p90_ms": _percentile(scheduled, 0.90),
            "p99_ms": _percentile(scheduled, 0.99),
            "max_ms": round(max(scheduled, default=float("nan")), 1),
            # Timed from when the request left instead: what a closed-loop tool reports.
            "p99_from_send_ms": _percentile(sent, 0.99),
            "p99_ms_by_minute": self.p99_by_minute(),
            "generator_cpu_percent": round(100 * self.generator_cpu_s / self.seconds, 1),
        }


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1], 2)


def generate(
    host: str,
    rate: float,
    seconds: float,
    scratch: Path,
    *,
    request: str = "order",
    path: str = "/orders",
    expect: int = 201,
    redis_port: int = 6380,
    token: str = "",
) -> Load:
    """Run Locust for one fixed-rate load and read what it did; ``token`` goes as the
    dapr-api-token header of a GET or POST (a sidecar's, or an app's)."""
    out = scratch / f"requests-{time.monotonic_ns()}.json"
    command = [
        *(sys.executable, "-m", "locust", "-f", str(_locustfile())),
        *("--headless", "--only-summary", "--loglevel", "WARNING"),
        *("--users", "1", "--spawn-rate", "1", "--host", host),
        # A bound in case the user never ends; it stops the run itself well before.
        *("--run-time", f"{seconds + 90:.0f}s", "--stop-timeout", "5"),
        *("--bench-rate", str(rate), "--bench-seconds", str(seconds)),
        *("--bench-request", request, "--bench-path", path, "--bench-expect", str(expect)),
        *("--bench-redis-port", str(redis_port), "--bench-out", str(out)),
    ]
    log = out.with_suffix(".log")
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "ORDERFLOW_BENCH_TOKEN": token},
        ) as locust,
    ):
        locust.wait()
    if not out.exists():
        last = log.read_text().strip()[-400:]
        raise RuntimeError(f"the load generator wrote no results: {last}")
    result = json.loads(out.read_text())
    return Load(
        rate=rate,
        seconds=seconds,
        due_from=float(result["due_from"]),
        requests=[tuple(r) for r in result["requests"]],
        unanswered=int(result["unanswered"]),
        generator_cpu_s=float(result["cpu_seconds"]),
    )


# Orders: one step at one rate.


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


async def _histories(storefront: str, order_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """When each order reached each step, from the order's own history."""
    limit = asyncio.Semaphore(32)
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(base_url=storefront, timeout=30) as client:

        async def one(order_id: str) -> None:
            async with limit:
                response = await client.get(f"/orders/{order_id}")
            if response.status_code == httpx.codes.OK:
                found[order_id] = {
                    step["status"]: _at(step["at"]) for step in response.json()["history"]
                }

        await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return found


async def order_step(
    local: LocalStack,
    sampler: Sampler,
    rate: float,
    plan: Plan,
    scratch: Path,
    *,
    quiet: dict[str, float],
) -> dict[str, Any]:
    """Orders at ``rate`` for ``plan.step_seconds``, measured through settle; it starts
    once the stack is back to ``quiet`` (its idle CPU before any load)."""
    await _settle(sampler, quiet, time.time() + SETTLE_AT_MOST_SECONDS)
    idle = await _idle(sampler, plan.idle_seconds)
    idle_pss = sampler.take(with_pss=True).pss or {}
    load = await asyncio.to_thread(
        generate, local.app_url("storefront"), rate, plan.step_seconds, scratch
    )
    settled = await _settle(sampler, idle, time.time() + SETTLE_AT_MOST_SECONDS)
    order_ids = [request[4] for request in load.ok]
    histories = await _histories(local.app_url("storefront"), order_ids)
    flows = [
        steps["notified"] - steps["placed"]
        for steps in histories.values()
        if "notified" in steps and "placed" in steps
    ]
    notified_at = [steps["notified"] for steps in histories.values() if "notified" in steps]
    not_notified = len(order_ids) - len(notified_at)
    # Through the moment the step's last order was notified (or settle, if some never were).
    end = max(notified_at) if notified_at and not not_notified else settled
    start_sample, load_end, end_sample = (
        sampler.at(load.due_from),
        sampler.at(load.due_until),
        sampler.at(end),
    )
    window = end - load.due_from
    used = {
        name: end_sample.cpu[name] - start_sample.cpu[name] - idle[name] * window
        for name in start_sample.cpu
    }
    orders = max(len(order_ids), 1)
    during = _rates(start_sample, load_end)
    busiest = max(during, key=lambda name: during[name])
    summary = load.summary()
    step: dict[str, Any] = summary | {
        "placed_to_notified_p50_s": _percentile(flows, 0.50),
        "placed_to_notified_p99_s": _percentile(flows, 0.99),
        "not_notified": not_notified,
        "settled_s_after_load": round(end - load.due_until, 1),
        "cpu_ms_per_order": round(1000 * sum(used.values()) / orders, 2),
        "apps_and_sidecars_cpu_ms_per_order": round(
            1000 * sum(v for name, v in used.items() if name not in INFRA) / orders, 2
        ),
        "cpu_ms_per_order_by_process": {
            name: round(1000 * value / orders, 2) for name, value in used.items()
        },
        "idle_cpu": round(sum(idle.values()), 3),
        "busiest_process": busiest,
        "busiest_process_cpus": round(during[busiest], 2),
        "cpus_by_process_during_load": {name: round(v, 3) for name, v in during.items()},
        "machine_busy_percent": round(
            100 * (load_end.machine - start_sample.machine) / (load.seconds * _cpus()), 1
        ),
        "generator_ms_per_request": round(
            1000 * load.generator_cpu_s / max(len(load.requests), 1), 3
        ),
        "idle_pss_mib": round(sum(idle_pss.values()), 1),
        "idle_pss_mib_by_process": {name: round(mib, 1) for name, mib in idle_pss.items()},
        "load_pss_mib": round(sum(sampler.peak_pss(load.due_from, load.due_until + 5).values()), 1),
    }
    step["sustained"] = (
        step["errors"] == 0
        and step["achieved_rps"] >= 0.99 * rate
        and not_notified == 0
        and step["p99_ms"] <= SATURATION_P99_MS
    )
    return step


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


async def order_steps(
    local: LocalStack, rates: Sequence[float], plan: Plan, scratch: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Step up through ``rates`` until a step is not sustained, but at least through the
    comparison rate (its figures are reported whether or not the stack keeps up)."""
    _refill(local)
    with Sampler(_groups(local)) as sampler:
        quiet = await _idle(sampler, plan.idle_seconds)
        await asyncio.to_thread(
            generate, local.app_url("storefront"), rates[0], plan.warmup_seconds, scratch
        )
        steps = []
        for rate in rates:
            step = await order_step(local, sampler, rate, plan, scratch, quiet=quiet)
            steps.append(step)
            say(
                f"  {rate:g} orders/s: p99 {step['p99_ms']} ms, {step['errors']} errors,"
                f" {step['cpu_ms_per_order']} CPU-ms/order, busiest {step['busiest_process']}"
                f" ({step['busiest_process_cpus']} CPUs)"
                + ("" if step["sustained"] else ": not sustained")
            )
            if not step["sustained"] and rate >= plan.compare_rps:
                break
    sustained = [step["target_rps"] for step in steps if step["sustained"]]
    return {"steps": steps, "max_sustained_rps": max(sustained, default=0)}


def _refill(local: LocalStack) -> None:
    for sku in ("espresso-beans", "grinder", "moka-pot"):
        httpx.put(
            f"{local.app_url('inventory')}/stock/{sku}",
            json={"quantity": 1_000_000},
            headers=local.tokens.app_headers("inventory"),
            timeout=10,
        ).raise_for_status()


# Invocation and publish overhead, side by side.

ROUNDS = 2  # alternating, so a disturbance on the machine lands on both paths


def side_by_side(
    runs: dict[str, dict[str, Any]], rate: float, seconds: float, scratch: Path
) -> dict[str, dict[str, Any]]:
    merged: dict[str, Load] = {}
    for _ in range(ROUNDS):
        for label, options in runs.items():
            load = generate(rate=rate, seconds=seconds / ROUNDS, scratch=scratch, **options)
            if label in merged:
                merged[label].requests += load.requests
                merged[label].unanswered += load.unanswered
                merged[label].seconds += load.seconds
                merged[label].generator_cpu_s += load.generator_cpu_s
            else:
                merged[label] = load
    return {label: load.summary() for label, load in merged.items()}


def _added(results: dict[str, dict[str, Any]], base: str, through: str) -> dict[str, float]:
    return {
        q: round(results[through][f"{q}_ms"] - results[base][f"{q}_ms"], 3)
        for q in ("p50", "p90", "p99")
    }


# A call that inventory's accessControl lets storefront make (deploy/dapr/access-control)
# and that changes nothing after the first: the release of an order that reserved nothing.
RELEASED = "reservations/bench-released"


def measure_invocation(local: LocalStack, plan: Plan, scratch: Path) -> dict[str, Any]:
    """Release a reservation on inventory (DELETE, one state read once released) straight
    and through storefront's and inventory's sidecars, and the sidecars' CPU and memory
    while through them."""
    through = local.dapr_url("storefront")
    groups = _groups(local)
    watched = {name: groups[name] for name in ("storefront-dapr", "inventory-dapr")}
    cpu_before = {name: _cpu_seconds(group) for name, group in watched.items()}
    runs = {
        "direct": {
            "host": local.app_url("inventory"),
            "request": "delete",
            "path": f"/{RELEASED}",
            "expect": 200,
        },
        "dapr": {
            "host": through,
            "request": "delete",
            "path": f"/v1.0/invoke/inventory/method/{RELEASED}",
            "expect": 200,
            "token": local.tokens.dapr_api["storefront"],
        },
    }
    results: dict[str, Any] = side_by_side(runs, plan.invoke_rps, plan.invoke_seconds, scratch)
    requests = results["dapr"]["ok"] or 1
    # Both paths ran while these were read; the direct one does not cross the sidecars.
    results["sidecars"] = {
        name: {
            "cpu_s_per_1000_requests": round(
                (_cpu_seconds(group) - cpu_before[name]) * 1000 / requests, 3
            ),
            "pss_mib": round(_pss_mib(group), 1),
        }
        for name, group in watched.items()
    }
    results["added_ms"] = _added(results, "direct", "dapr")
    results["ratio_to_anchor"] = {
        q: round(results["added_ms"][q] / ANCHOR_ADDED_MS[q], 2) for q in ANCHOR_ADDED_MS
    }
    return results


SDK_CALLS = 2000


def measure_sdk_path(local: LocalStack, calls: int = SDK_CALLS) -> dict[str, Any]:
    """What a call to the sidecar costs through the Dapr Python SDK the services use
    (orderflow_common.sidecar: invocation over its HTTP client, state over gRPC) against
    plain HTTP to the same sidecar (one pooled aiohttp session): ``calls`` invocations of
    ``RELEASED`` on inventory and ``calls`` state reads on storefront's sidecar each way,
    one at a time. Per call: latency p50/p99, this process's CPU (the app's side) and
    storefront's sidecar's CPU. https://docs.dapr.io/developing-applications/sdks/python/"""
    return asyncio.run(_sdk_path(local, calls))


async def _sdk_path(local: LocalStack, calls: int) -> dict[str, Any]:
    app = local.apps["storefront"]
    token = local.tokens.dapr_api["storefront"]
    settings = ServiceSettings(
        APP_PORT=app.app_port,
        DAPR_HTTP_PORT=app.dapr_http_port,
        DAPR_GRPC_PORT=app.dapr_grpc_port,
        DAPR_API_TOKEN=SecretStr(token),
        APP_API_TOKEN=SecretStr(token),  # required; this process serves no app routes
    )
    sidecar_cpu = _groups(local)["storefront-dapr"]
    base = local.dapr_url("storefront")
    headers = {"dapr-api-token": token}
    results: dict[str, Any] = {"calls": calls}
    async with sidecar.connect(settings, Telemetry()) as sdk, aiohttp.ClientSession() as http:

        async def http_invoke() -> None:
            url = f"{base}/v1.0/invoke/inventory/method/{RELEASED}"
            async with http.delete(url, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        async def http_state() -> None:
            url = f"{base}/v1.0/state/orderstore/bench-absent"
            async with http.get(url, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        async def sdk_invoke() -> None:
            await sdk.invoke_method("inventory", RELEASED, http_verb="DELETE")

        async def sdk_state() -> None:
            await sidecar.get_state(sdk, "orderstore", "bench-absent")

        paths = {
            "invoke_http": http_invoke,
            "invoke_sdk": sdk_invoke,
            "state_http": http_state,
            "state_sdk": sdk_state,
        }
        for name, call in paths.items():
            await call()  # a first call opens what later calls reuse
            latencies = []
            cpu, sidecar_before = time.process_time(), _cpu_seconds(sidecar_cpu)
            for _ in range(calls):
                started = time.perf_counter()
                await call()
                latencies.append((time.perf_counter() - started) * 1000)
            results[name] = {
                "p50_ms": round(_percentile(latencies, 0.50), 3),
                "p99_ms": round(_percentile(latencies, 0.99), 3),
                "app_cpu_ms_per_call": round((time.process_time() - cpu) * 1000 / calls, 3),
                "sidecar_cpu_ms_per_call": round(
                    (_cpu_seconds(sidecar_cpu) - sidecar_before) * 1000 / calls, 3
                ),
            }
    return results


def sdk_path_table(figures: dict[str, Any]) -> list[str]:
    """The SDK-against-HTTP figures as a Markdown table."""
    lines = [
        f"### The SDK path against plain HTTP ({figures['calls']} calls each, one at a time)",
        "",
        "| call | p50 ms | p99 ms | app CPU ms/call | sidecar CPU ms/call |",
        "|---|---|---|---|---|",
    ]
    titles = {
        "invoke_http": "invocation, plain HTTP (pooled aiohttp)",
        "invoke_sdk": "invocation, SDK (its HTTP client)",
        "state_http": "state get, plain HTTP (pooled aiohttp)",
        "state_sdk": "state get, SDK (gRPC)",
    }
    for key, title in titles.items():
        row = figures[key]
        lines.append(
            f"| {title} | {row['p50_ms']} | {row['p99_ms']} | {row['app_cpu_ms_per_call']}"
            f" | {row['sidecar_cpu_ms_per_call']} |"
        )
    return [*lines, ""]


def measure_publish(local: LocalStack, plan: Plan, scratch: Path) -> dict[str, Any]:
    """A Dapr publish (storefront's sidecar) beside the one XADD it makes in Redis, of
    the same 1 KiB, to streams nobody reads."""
    runs: dict[str, dict[str, Any]] = {
        "redis_xadd": {"host": "http://127.0.0.1", "request": "xadd"},
        "dapr_publish": {
            "host": local.dapr_url("storefront"),
            "request": "post",
            "path": "/v1.0/publish/pubsub/bench-publish",
            "expect": 204,
            "token": local.tokens.dapr_api["storefront"],
        },
    }
    for options in runs.values():
        options["redis_port"] = local.redis_port
    results = side_by_side(runs, plan.invoke_rps, plan.invoke_seconds, scratch)
    results["added_ms"] = _added(results, "redis_xadd", "dapr_publish")
    return results


# Stacks.


def _variant(
    local: LocalStack,
    run_file: Path,
    run_dir: Path,
    tools: Tools,
    log: IO[str],
    *,
    env: dict[str, dict[str, str]],
    telemetry: bool,
) -> None:
    """The same stack with extra environment per app and, without telemetry, the
    sidecars' tracing and metrics off (a copy of the Configuration) and the apps'
    OpenTelemetry SDK disabled."""
    apps = runfile.load(run_file)
    config_file = apps[0].config_file
    if not telemetry:
        config = yaml.safe_load(config_file.read_text())
        config["spec"]["tracing"]["samplingRate"] = "0"
        config["spec"]["metrics"] = {"enabled": False}
        config_file = run_dir / "config-telemetry-off.yaml"
        config_file.write_text(yaml.safe_dump(config))
    changed = []
    for app in apps:
        extra = dict(env.get(app.app_id, {}))
        if not telemetry:
            extra["OTEL_SDK_DISABLED"] = "true"
        changed.append(
            app.model_copy(update={"config_file": config_file, "env": {**app.env, **extra}})
        )
    dapr_resources = resources.load(apps[0].resources_path, apps[0].config_file)
    local.apps = {app.app_id: app for app in changed}
    local.stack = Stack(
        local_processes(
            run_file.parent, run_dir, tools, changed, dapr_resources, secrets=local.tokens
        ),
        log,
    )


# The figure the targets are stated for: no CPU work in fulfillment.
NO_WORK = {"fulfillment": {"FULFILLMENT_WORK_MS": "0"}}


@contextlib.contextmanager
def running_stack(
    run_file: Path,
    run_dir: Path,
    tools: Tools,
    log: IO[str],
    *,
    env: dict[str, dict[str, str]] | None = None,
    telemetry: bool = True,
) -> Iterator[tuple[LocalStack, float]]:
    """Start a stack; yield it and the seconds it took to become healthy."""
    run_dir.mkdir(parents=True, exist_ok=True)
    local = LocalStack(run_file, run_dir, tools, log)
    _variant(local, run_file, run_dir, tools, log, env=env or {}, telemetry=telemetry)
    started = time.monotonic()
    try:
        local.start(timeout=120)
        yield local, time.monotonic() - started
    finally:
        local.stop()


def environment(tools: Tools) -> dict[str, Any]:
    frequency = psutil.cpu_freq()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpu_mhz": round(frequency.current) if frequency else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "daprd": tools.daprd.parent.name,
        "generator": "Locust FastHttpUser, open loop, in its own process on the same CPUs",
        # Other work on the machine skews every number: read them with this beside.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _step_at(steps: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    return next((step for step in steps if step["target_rps"] == rate), {})


def run_all(
    tools: Tools, run_file: Path, out: Path, plan: Plan, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every measurement, in one run; returns the results document."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"environment": environment(tools), "plan": asdict(plan)}
    with (out / "stack.log").open("w") as log, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        run_dir = scratch / "run"
        # Cold: a fresh run directory and an empty bytecode cache, so every module is
        # compiled again. Warm: both reused. (The OS page cache stays warm.)
        os.environ["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        try:
            say("stack start, cold")
            with running_stack(run_file, run_dir, tools, log, env=NO_WORK) as (_, cold):
                pass
            say("stack start, warm; then invocation, publish, orders")
            with running_stack(run_file, run_dir, tools, log, env=NO_WORK) as (local, warm):
                results["start_seconds"] = {"cold": round(cold, 2), "warm": round(warm, 2)}
                say(f"invocation at {plan.invoke_rps:g} rps, direct and through Dapr")
                results["invocation"] = measure_invocation(local, plan, scratch)
                say(f"the SDK path against plain HTTP, {SDK_CALLS} calls each way")
                results["sdk_path"] = measure_sdk_path(local)
                say(f"publish at {plan.invoke_rps:g} rps, Redis XADD and Dapr publish")
                results["publish"] = measure_publish(local, plan, scratch)
                say(f"orders, FULFILLMENT_WORK_MS=0: stepping {plan.order_rates} orders/s")
                results["orders"] = asyncio.run(
                    order_steps(local, plan.order_rates, plan, scratch, say)
                )
        finally:
            os.environ.pop("PYTHONPYCACHEPREFIX", None)
        say(f"telemetry off: orders at {plan.compare_rps:g}/s on a stack without it")
        with running_stack(
            run_file, scratch / "quiet", tools, log, env=NO_WORK, telemetry=False
        ) as (local, _):
            off = asyncio.run(order_steps(local, (plan.compare_rps,), plan, scratch, say))
        say(f"orders, default FULFILLMENT_WORK_MS: stepping {plan.work_rates} orders/s")
        with running_stack(run_file, scratch / "work", tools, log) as (local, _):
            results["orders_with_work"] = asyncio.run(
                order_steps(local, plan.work_rates, plan, scratch, say)
            )
    results["environment"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    on = _step_at(results["orders"]["steps"], plan.compare_rps)
    off_step = off["steps"][0]
    results["telemetry"] = {
        "rps": plan.compare_rps,
        "on": on,
        "off": off_step,
        "off_means": "sidecars: tracing samplingRate 0 and metrics off; apps: OTEL_SDK_DISABLED",
        "cpu_ratio_on_to_off": round(
            on.get("cpu_ms_per_order", 0) / max(off_step["cpu_ms_per_order"], 1e-9), 2
        )
        if on
        else None,
    }
    results["summary"] = summarize(results, plan)
    return results


def run_sdk_path(
    tools: Tools, run_file: Path, out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Only :func:`measure_sdk_path`, on a stack of its own (``orderflow bench --sdk``)."""
    out.mkdir(parents=True, exist_ok=True)
    with (
        (out / "stack.log").open("w") as log,
        tempfile.TemporaryDirectory() as tmp,
        running_stack(run_file, Path(tmp) / "run", tools, log, env=NO_WORK) as (local, _),
    ):
        say(f"the SDK path against plain HTTP, {SDK_CALLS} calls each way")
        return measure_sdk_path(local)


def summarize(results: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The figures the targets are set for (docs/load.md)."""
    steps = results["orders"]["steps"]
    at_target = _step_at(steps, TARGETS["sustained_rps"])
    compared = _step_at(steps, plan.compare_rps)
    return {
        "sustained_rps": results["orders"]["max_sustained_rps"],
        "post_orders_p99_ms": at_target.get("p99_ms"),
        "cpu_ms_per_order": at_target.get("cpu_ms_per_order"),
        "cpu_ms_per_order_at_compare_rps": compared.get("cpu_ms_per_order"),
        "placed_to_notified_p50_s": compared.get("placed_to_notified_p50_s"),
        "placed_to_notified_p99_s": compared.get("placed_to_notified_p99_s"),
        "idle_pss_mib": steps[0]["idle_pss_mib"] if steps else None,
        "load_pss_mib": at_target.get("load_pss_mib"),
        "sustained_rps_with_work": results["orders_with_work"]["max_sustained_rps"],
    }


# The soak.


def run_soak(
    tools: Tools, run_file: Path, out: Path, plan: Plan, say: Callable[[str], None]
) -> dict[str, Any]:
    """Orders at ``plan.soak_rps`` for ``plan.soak_seconds`` on one stack: memory over
    time (PSS, and Redis's own dataset), p99 per minute, and orders never notified."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"environment": environment(tools), "plan": asdict(plan)}
    with (out / "stack.log").open("w") as log, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        with running_stack(run_file, scratch / "run", tools, log, env=NO_WORK) as (local, _):
            _refill(local)
            store = redis.Redis(port=local.redis_port)
            say(f"soak: {plan.soak_rps:g} orders/s for {plan.soak_seconds:g} s")
            with Sampler(_groups(local)) as sampler:
                quiet = asyncio.run(_idle(sampler, plan.idle_seconds))
                generate(local.app_url("storefront"), plan.soak_rps, 10, scratch)
                redis_before = int(store.info("memory")["used_memory"])
                step = asyncio.run(
                    order_step(
                        local,
                        sampler,
                        plan.soak_rps,
                        Plan(step_seconds=plan.soak_seconds, idle_seconds=plan.idle_seconds),
                        scratch,
                        quiet=quiet,
                    )
                )
                redis_after = int(store.info("memory")["used_memory"])
            store.close()
    start = sampler.samples[0].at
    memory = [
        (round(sample.at - start), sample.pss)
        for sample in sampler.samples
        if sample.pss is not None
    ]
    results["soak"] = step | {
        "pss_mib_over_time": [
            (at, round(sum(pss.values()), 1), round(pss.get("redis", 0.0), 1)) for at, pss in memory
        ],
        "redis_dataset_mib": {
            "before": round(redis_before / 2**20, 1),
            "after": round(redis_after / 2**20, 1),
        },
    }
    return results


def soak_report(results: dict[str, Any]) -> str:
    soak = results["soak"]
    plan = results["plan"]
    memory = soak["pss_mib_over_time"]

    # Growth: the last minute's PSS against the second minute's (the first is warm-up),
    # of the whole stack, and of every process but Redis (whose dataset grows by design).
    def growth(of: Callable[[float, float], float]) -> float | None:
        second = [of(total, redis) for at, total, redis in memory if 60 <= at < 120]
        last = [of(total, redis) for at, total, redis in memory if at >= memory[-1][0] - 60]
        if not (second and last):
            return None
        return round(100 * (statistics.mean(last) / statistics.mean(second) - 1), 1)

    soak["pss_growth_percent"] = growth(lambda total, _: total)
    soak["pss_growth_percent_without_redis"] = growth(lambda total, redis: total - redis)
    lines = [
        f"Soak: {plan['soak_rps']:g} orders/s for {plan['soak_seconds']:g} s:"
        f" {soak['ok']} orders, {soak['errors']} errors, {soak['not_notified']} never notified;"
        f" POST /orders p99 {soak['p99_ms']} ms, per minute {soak['p99_ms_by_minute']};"
        f" placed->notified p50 {soak['placed_to_notified_p50_s']} s,"
        f" p99 {soak['placed_to_notified_p99_s']} s; CPU {soak['cpu_ms_per_order']} ms/order",
        f"Stack PSS growth, last minute against the second: {_fmt(soak['pss_growth_percent'])}%"
        f" ({_fmt(soak['pss_growth_percent_without_redis'])}% without Redis); Redis's dataset"
        f" {soak['redis_dataset_mib']['before']} -> {soak['redis_dataset_mib']['after']} MiB",
        "",
        "| seconds | stack PSS MiB | of it Redis |",
        "|---|---|---|",
        *(f"| {at} | {total} | {of_redis} |" for at, total, of_redis in memory if at % 60 < 5),
    ]
    return "\n".join(lines) + "\n"


# Reports.


def markdown(results: dict[str, Any]) -> str:
    """The results as one table per measurement, the targets beside them."""
    env = results["environment"]
    lines = [
        f"orderflow bench, {env['when']}: {env['cpu_model']}, {env['cpus']} CPUs, "
        f"{env['memory_gb']} GB, Python {env['python']}, {env['daprd']}; {env['generator']};"
        f" load average {env['load_average_1m_at_start']} at start,"
        f" {env['load_average_1m_at_end']} at end",
        "",
        *_targets_table(results["summary"]),
        "",
        "Orders, FULFILLMENT_WORK_MS=0, every request traced:",
        "",
        *_steps_table(results["orders"]["steps"]),
        "",
        "Orders with the default FULFILLMENT_WORK_MS (fulfillment's CPU work per order):",
        "",
        *_steps_table(results["orders_with_work"]["steps"]),
        "",
        *_telemetry_table(results["telemetry"]),
        "",
        *_overhead_tables(results["invocation"], results["publish"]),
        *sdk_path_table(results["sdk_path"]),
        "",
        *_memory_table(results["orders"]["steps"]),
        "",
        "| Local stack start (14 processes) | seconds |",
        "|---|---|",
        f"| cold (fresh data, empty bytecode cache) | {results['start_seconds']['cold']} |",
        f"| warm | {results['start_seconds']['warm']} |",
        "",
        COMPARABILITY,
    ]
    return "\n".join(lines) + "\n"


COMPARABILITY = """\
What compares with Dapr's published figures, and what does not:
- Comparable in kind: the service invocation added latency (p50/p90/p99 through two
  sidecars minus straight to the app) and the sidecars' CPU per 1,000 requests. Not in
  conditions: Dapr measures 1 KB POSTs at 1,000 rps with the load generator, each app and
  each sidecar on dedicated Kubernetes nodes; here a DELETE that releases nothing (one
  state read) at 200 rps over mTLS, with the generator, 14 processes and the rest of the
  machine sharing 2 CPUs.
- Not comparable with anything Dapr publishes: every order figure (five apps, five
  sidecars, Redis, Jaeger and Prometheus on 2 CPUs, full tracing), and the publish
  overhead (Dapr publishes no such figure). Read them against the baseline of this
  machine (loadtest/baseline.json) and the targets in docs/load.md."""


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float | int) else str(value)


def _targets_table(summary: dict[str, Any]) -> list[str]:
    rows = [
        ("sustained orders/s (0 errors, all notified)", "sustained_rps", ">="),
        ("POST /orders p99 ms at 100/s, from schedule", "post_orders_p99_ms", "<="),
        ("CPU ms per order at 100/s, whole stack, through settle", "cpu_ms_per_order", "<="),
        ("placed->notified p50 s", "placed_to_notified_p50_s", "<="),
        ("placed->notified p99 s", "placed_to_notified_p99_s", "<="),
        ("idle stack PSS MiB", "idle_pss_mib", "<="),
        ("stack PSS MiB under 100 orders/s", "load_pss_mib", "<="),
    ]
    lines = ["| target | now | target | met |", "|---|---|---|---|"]
    for title, key, sense in rows:
        now, goal = summary.get(key), TARGETS[key]
        met = (
            "-"
            if now is None
            else ("yes" if (now >= goal if sense == ">=" else now <= goal) else "no")
        )
        lines.append(f"| {title} | {_fmt(now)} | {sense} {goal:g} | {met} |")
    lines.append(
        f"| sustained orders/s with the default FULFILLMENT_WORK_MS |"
        f" {_fmt(summary['sustained_rps_with_work'])} | | |"
    )
    return lines


def _steps_table(steps: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| orders/s | achieved | errors | p50 ms | p99 ms | p99 ms from send | placed->notified"
        " p50 / p99 s | not notified | CPU ms/order (apps+sidecars) | machine busy % |"
        " generator CPU % | busiest process (CPUs) | PSS MiB | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s['target_rps']:g} | {s['achieved_rps']} | {s['errors']} | {s['p50_ms']} "
        f"| {s['p99_ms']} | {s['p99_from_send_ms']} | {s['placed_to_notified_p50_s']} / "
        f"{s['placed_to_notified_p99_s']} | {s['not_notified']} | {s['cpu_ms_per_order']} "
        f"({s['apps_and_sidecars_cpu_ms_per_order']}) | {s['machine_busy_percent']} "
        f"| {s['generator_cpu_percent']} | {s['busiest_process']} ({s['busiest_process_cpus']}) "
        f"| {s['load_pss_mib']} | {'yes' if s['sustained'] else 'no'} |"
        for s in steps
    ]
    return lines


def _telemetry_table(telemetry: dict[str, Any]) -> list[str]:
    lines = [
        f"| Telemetry at {telemetry['rps']:g} orders/s | p50 ms | p99 ms | CPU ms/order "
        "| placed->notified p50 s |",
        "|---|---|---|---|---|",
    ]
    for label in ("on", "off"):
        step = telemetry[label]
        if step:
            lines.append(
                f"| {label} | {step['p50_ms']} | {step['p99_ms']} | {step['cpu_ms_per_order']} "
                f"| {step['placed_to_notified_p50_s']} |"
            )
    lines.append(f"| on / off CPU | | | x{_fmt(telemetry['cpu_ratio_on_to_off'])} | |")
    return lines


def _overhead_tables(invocation: dict[str, Any], publish: dict[str, Any]) -> list[str]:
    lines = [
        "| Invocation, GET /healthz at 200 rps | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    lines += _latency_rows(
        invocation, {"direct": "straight to inventory", "dapr": "through 2 sidecars"}
    )
    added, ratio = invocation["added_ms"], invocation["ratio_to_anchor"]
    lines += [
        f"| **added by Dapr** | **{added['p50']}** | **{added['p90']}** | **{added['p99']}** | |",
        "| anchor: Dapr v1.17, 1,000 rps, 1 KB | 1.06 | 1.48 | 2.90 | |",
        f"| ratio to anchor | {ratio['p50']} | {ratio['p90']} | {ratio['p99']} | |",
        "",
        "| Sidecar during the invocation runs | CPU-s per 1,000 requests | PSS MiB |",
        "|---|---|---|",
    ]
    for name, usage in invocation["sidecars"].items():
        lines.append(f"| {name} | {usage['cpu_s_per_1000_requests']} | {usage['pss_mib']} |")
    lines += [
        f"| anchor: a Dapr sidecar at 1,000 rps | {ANCHOR_SIDECAR_VCPU_AT_1000_RPS} "
        f"| {ANCHOR_SIDECAR_MB:g} (RSS) |",
        "",
        "| Publish, 1 KiB at 200 rps | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---|---|---|",
    ]
    lines += _latency_rows(
        publish, {"redis_xadd": "Redis XADD, direct", "dapr_publish": "Dapr publish"}
    )
    padded = publish["added_ms"]
    lines.append(
        f"| **added by Dapr** | **{padded['p50']}** | **{padded['p90']}** | **{padded['p99']}** | |"
    )
    return lines


def _latency_rows(runs: dict[str, Any], titles: dict[str, str]) -> list[str]:
    return [
        f"| {title} | {runs[label]['p50_ms']} | {runs[label]['p90_ms']} "
        f"| {runs[label]['p99_ms']} | {runs[label]['errors']} |"
        for label, title in titles.items()
    ]


def _memory_table(steps: list[dict[str, Any]]) -> list[str]:
    if not steps:
        return []
    last = steps[-1]
    return [
        "| Memory (PSS) | MiB |",
        "|---|---|",
        f"| whole stack, idle (before the first step) | {steps[0]['idle_pss_mib']} |",
        *(
            f"| whole stack, at most during {s['target_rps']:g} orders/s | {s['load_pss_mib']} |"
            for s in steps
        ),
        f"| busiest process of the last step: {last['busiest_process']} | |",
    ]


# The numbers a comparison looks at, each with the direction that is better.
KEY_FIGURES: dict[str, tuple[tuple[str, ...], str]] = {
    "sustained orders/s": (("summary", "sustained_rps"), "higher"),
    "POST /orders p99 ms at 100/s": (("summary", "post_orders_p99_ms"), "lower"),
    "CPU ms per order at 100/s": (("summary", "cpu_ms_per_order"), "lower"),
    "placed->notified p50 s": (("summary", "placed_to_notified_p50_s"), "lower"),
    "placed->notified p99 s": (("summary", "placed_to_notified_p99_s"), "lower"),
    "idle PSS MiB": (("summary", "idle_pss_mib"), "lower"),
    "PSS MiB under 100/s": (("summary", "load_pss_mib"), "lower"),
    "sustained orders/s, default work": (("summary", "sustained_rps_with_work"), "higher"),
    "invocation added p50 ms": (("invocation", "added_ms", "p50"), "lower"),
    "invocation added p99 ms": (("invocation", "added_ms", "p99"), "lower"),
    "start warm s": (("start_seconds", "warm"), "lower"),
}


def _dig(document: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def compare(new: dict[str, Any], baseline: dict[str, Any]) -> str:
    """A markdown table of the key figures: baseline, now, and now / baseline."""
    lines = [
        f"Compared with the baseline of {baseline['environment']['when']} "
        f"({baseline['environment']['cpu_model']}, {baseline['environment']['cpus']} CPUs)",
        "",
        "| figure | baseline | now | now / baseline | better is |",
        "|---|---|---|---|---|",
    ]
    for name, (path, better) in KEY_FIGURES.items():
        old, now = _dig(baseline, path), _dig(new, path)
        if old is None or now is None:
            continue
        ratio = f"{now / old:.2f}" if old else "-"
        lines.append(f"| {name} | {old:g} | {now:g} | {ratio} | {better} |")
    return "\n".join(lines) + "\n"
