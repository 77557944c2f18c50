"""``orderflow bench``: how fast and how light orderflow is on this machine, measured side
by side in one run and set against the anchors Dapr publishes.

1. Service invocation overhead: the same 1 KiB POST at the same fixed rate, straight to
   inventory's app and through two sidecars (storefront's, then inventory's). inventory's
   ``POST /events/ignored`` (every service has it, it reads nothing and answers 200) is the
   route, so the app's work is the same both ways and only the Dapr path differs.
2. Publish overhead: Dapr publish (storefront's sidecar) against a direct Redis ``XADD``
   of the same 1 KiB at the same rate, to topics nobody subscribes to.
3. Orders end to end: ``POST /orders`` at fixed rates, stepping up until the stack falls
   behind (over 1% errors, or p99 over 1 s): the saturation rate.
4. CPU per 1,000 requests and resident memory of both sidecars and the app during (1);
   for orders, the CPU of every app and sidecar per 1,000 orders above their idle use.
5. Telemetry: the same order rate with tracing and metrics on, then with the sidecars'
   tracing and metrics off and ``OTEL_SDK_DISABLED=true`` in the apps.
6. Start time of the whole local stack, cold (fresh run directory and Python bytecode
   cache) and warm (both reused).

The load generator is this process's main thread, pinned to CPU 0; the stack runs on the
other CPUs (its processes inherit an affinity set before they start), so the generator
never competes with what it measures. Its own CPU is reported. It is an open-loop
generator: each request is sent on its schedule whether or not earlier ones returned, as
Dapr's Fortio-based perf tests do, so a slow server cannot slow the offered rate.
https://github.com/dapr/dapr/blob/master/tests/perf/README.md
https://docs.dapr.io/operations/performance-and-scalability/perf-service-invocation/
"""

import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import redis.asyncio as aioredis
import yaml

from orderflow_devtools import resources, runfile
from orderflow_devtools.stack import INFRA, LocalStack, Stack, local_processes
from orderflow_devtools.tools import Tools

BASELINE = Path("loadtest/baseline.json")
PAYLOAD = {"pad": "x" * 1009}  # 1 KiB of JSON: {"pad": "..."} is 1,024 bytes
PAYLOAD_BYTES = len(json.dumps(PAYLOAD))
GENERATOR_CPU = 0
# Dapr v1.17's published figures (HTTP service invocation, 1 KB, 1,000 rps):
# https://docs.dapr.io/operations/performance-and-scalability/perf-service-invocation/
ANCHOR_ADDED_MS = {"p50": 1.06, "p90": 1.48, "p99": 2.90}
ANCHOR_SIDECAR_VCPU_AT_1000_RPS = 0.2  # so 0.2 CPU-seconds per 1,000 requests
ANCHOR_SIDECAR_RSS_MB = 51.0
ANCHOR_MAX_ADDED_P90_MS = 2.0  # Dapr's own perf gate
# CPU-seconds a second below which the stack counts as idle (its background polling).
IDLE_CPU = 0.15
SETTLE_AT_MOST_SECONDS = 30.0
SATURATION_P99_MS = 1000.0


@dataclass(frozen=True)
class Plan:
    """Rates and durations; the defaults take about 4 minutes on 2 CPUs (limit: 10)."""

    invoke_rps: float = 200.0
    invoke_seconds: float = 20.0
    publish_rps: float = 200.0
    publish_seconds: float = 15.0
    # Fine steps: on 2 CPUs the stack (pinned to one) saturates in the low tens.
    order_rates: tuple[float, ...] = (5, 8, 11, 14, 17, 20, 25, 30, 40)
    order_seconds: float = 10.0
    # Below saturation even when the machine is busy, so on and off compare like for like.
    telemetry_rps: float = 6.0
    telemetry_seconds: float = 20.0
    warmup_seconds: float = 2.0


QUICK = Plan(
    invoke_seconds=5,
    publish_seconds=5,
    order_rates=(5, 10),
    order_seconds=5,
    telemetry_seconds=5,
    warmup_seconds=1,
)


@dataclass
class Run:
    """One fixed-rate run: what was offered, what came back, and how long it took."""

    target_rps: float
    seconds: float
    sent: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    generator_cpu_s: float = 0.0

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=1000, method="inclusive")[
            round(q * 1000) - 1
        ]

    def merge(self, other: "Run") -> None:
        self.seconds += other.seconds
        self.sent += other.sent
        self.errors += other.errors
        self.latencies_ms += other.latencies_ms
        self.generator_cpu_s += other.generator_cpu_s

    def summary(self) -> dict[str, float]:
        return {
            "target_rps": self.target_rps,
            "achieved_rps": round(self.achieved_rps, 2),
            "sent": self.sent,
            "errors": self.errors,
            "p50_ms": round(self.percentile(0.50), 3),
            "p90_ms": round(self.percentile(0.90), 3),
            "p99_ms": round(self.percentile(0.99), 3),
            "generator_cpu_percent": round(100 * self.generator_cpu_s / self.seconds, 1),
        }


Send = Callable[[], Awaitable[bool]]


async def fixed_rate(send: Send, rps: float, seconds: float, concurrency: int = 256) -> Run:
    """Call ``send`` ``rps`` times a second for ``seconds``, on schedule (open loop); a
    call that would exceed ``concurrency`` in flight counts as an error (overload)."""
    run = Run(target_rps=rps, seconds=seconds)
    in_flight: set[asyncio.Task[None]] = set()

    async def one() -> None:
        started = time.perf_counter()
        try:
            ok = await send()
        except (httpx.HTTPError, aioredis.RedisError, OSError):
            ok = False
        if ok:
            run.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            run.errors += 1

    cpu_before = time.thread_time()
    start = time.perf_counter()
    total = round(rps * seconds)
    for index in range(total):
        delay = start + index / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        run.sent += 1
        if len(in_flight) >= concurrency:
            run.errors += 1
            continue
        task = asyncio.create_task(one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)
    run.seconds = time.perf_counter() - start
    run.generator_cpu_s = time.thread_time() - cpu_before
    return run


# Paths compared side by side run in alternating rounds, so a disturbance on this shared
# machine (another process, a GC pause, a disk flush) lands on both, not on one.
ROUNDS = 4


class CpuMeter:
    """CPU-seconds used by groups of processes, summed over the rounds it measures."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self.used = dict.fromkeys(groups, 0.0)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        before = {name: _cpu_seconds(group) for name, group in self.groups.items()}
        yield
        for name, group in self.groups.items():
            self.used[name] += _cpu_seconds(group) - before[name]


async def side_by_side(
    sends: dict[str, Send],
    rps: float,
    seconds: float,
    warmup: float,
    meters: dict[str, CpuMeter] | None = None,
) -> dict[str, Run]:
    """Each of ``sends`` at ``rps`` for ``seconds`` in all, in :data:`ROUNDS` alternating
    rounds after a warm-up of each; ``meters[label]`` measures CPU during that label's."""
    for send in sends.values():
        await fixed_rate(send, rps, warmup)
    merged = {label: Run(target_rps=rps, seconds=0.0) for label in sends}
    for _ in range(ROUNDS):
        for label, send in sends.items():
            meter = (meters or {}).get(label)
            with meter.measuring() if meter else contextlib.nullcontext():
                merged[label].merge(await fixed_rate(send, rps, seconds / ROUNDS))
    return merged


# The stack, pinned away from the generator.


def _stack_cpus() -> set[int]:
    cpus = os.sched_getaffinity(0)
    rest = cpus - {GENERATOR_CPU}
    return rest or cpus


@contextlib.contextmanager
def running_stack(
    run_file: Path, run_dir: Path, tools: Tools, log: IO[str], *, telemetry: bool
) -> Iterator[tuple[LocalStack, float]]:
    """Start the stack on every CPU but the generator's; yield it and its start time."""
    local = LocalStack(run_file, run_dir, tools, log)
    if not telemetry:
        _without_telemetry(local, run_file, run_dir, tools, log)
    mine = os.sched_getaffinity(0)
    # Children inherit the affinity of the thread that starts them; this thread then
    # moves to the generator's CPU (os.sched_setaffinity(0) moves the calling thread).
    os.sched_setaffinity(0, _stack_cpus())
    started = time.monotonic()
    try:
        local.start(timeout=120)
        elapsed = time.monotonic() - started
        os.sched_setaffinity(0, {GENERATOR_CPU})
        yield local, elapsed
    finally:
        os.sched_setaffinity(0, mine)
        local.stop()


def _without_telemetry(
    local: LocalStack, run_file: Path, run_dir: Path, tools: Tools, log: IO[str]
) -> None:
    """The same stack with the sidecars' tracing and metrics off (a copy of the
    Configuration) and the apps' OpenTelemetry SDK disabled."""
    apps = runfile.load(run_file)
    config = yaml.safe_load(apps[0].config_file.read_text())
    config["spec"]["tracing"]["samplingRate"] = "0"
    config["spec"]["metrics"] = {"enabled": False}
    quiet = run_dir / "config-telemetry-off.yaml"
    quiet.write_text(yaml.safe_dump(config))
    off = [
        app.model_copy(
            update={"config_file": quiet, "env": {**app.env, "OTEL_SDK_DISABLED": "true"}}
        )
        for app in apps
    ]
    dapr_resources = resources.load(apps[0].resources_path, apps[0].config_file)
    local.apps = {app.app_id: app for app in off}
    local.stack = Stack(local_processes(run_file.parent, run_dir, tools, off, dapr_resources), log)


def _processes(local: LocalStack, name: str) -> list[psutil.Process]:
    """``name``'s process and its children (``uv run`` starts the Python app as a child)."""
    leader = psutil.Process(local.stack.pids()[name])
    return [leader, *leader.children(recursive=True)]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _rss_mb(processes: list[psutil.Process]) -> float:
    # The largest process of the group: the app itself, not the `uv run` wrapper.
    sizes = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(process.memory_info().rss)
    return max(sizes, default=0) / 2**20


# The measurements.


async def measure_invocation(local: LocalStack, plan: Plan) -> dict[str, Any]:
    direct_url = f"{local.app_url('inventory')}/events/ignored"
    dapr_url = f"{local.dapr_url('storefront')}/v1.0/invoke/inventory/method/events/ignored"
    body = json.dumps(PAYLOAD).encode()
    watched = ("storefront-dapr", "inventory-dapr", "inventory")
    result: dict[str, Any] = {"rps": plan.invoke_rps, "payload_bytes": len(body)}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    meter = CpuMeter({name: _processes(local, name) for name in watched})
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        def sender(url: str) -> Send:
            async def send() -> bool:
                headers = {"content-type": "application/json"}
                response = await client.post(url, content=body, headers=headers)
                return response.status_code == 200

            return send

        runs = await side_by_side(
            {"direct": sender(direct_url), "dapr": sender(dapr_url)},
            plan.invoke_rps,
            plan.invoke_seconds,
            plan.warmup_seconds,
            meters={"dapr": meter},
        )
    result |= {label: run.summary() for label, run in runs.items()}
    requests = len(runs["dapr"].latencies_ms) or 1
    result["resources"] = {
        name: {
            "cpu_s_per_1000_requests": round(meter.used[name] * 1000 / requests, 3),
            "rss_mb": round(_rss_mb(group), 1),
        }
        for name, group in meter.groups.items()
    }
    added = {
        q: round(result["dapr"][f"{q}_ms"] - result["direct"][f"{q}_ms"], 3)
        for q in ANCHOR_ADDED_MS
    }
    result["added_ms"] = added
    result["anchor_added_ms"] = ANCHOR_ADDED_MS
    result["ratio_to_anchor"] = {q: round(added[q] / ANCHOR_ADDED_MS[q], 2) for q in added}
    result["dapr_gate_added_p90_le_2ms"] = added["p90"] <= ANCHOR_MAX_ADDED_P90_MS
    sidecars = [result["resources"][f"{app}-dapr"] for app in ("storefront", "inventory")]
    result["sidecar_ratio_to_anchor"] = {
        "cpu": round(
            statistics.mean(s["cpu_s_per_1000_requests"] for s in sidecars)
            / ANCHOR_SIDECAR_VCPU_AT_1000_RPS,
            2,
        ),
        "rss": round(statistics.mean(s["rss_mb"] for s in sidecars) / ANCHOR_SIDECAR_RSS_MB, 2),
    }
    return result


async def measure_publish(local: LocalStack, plan: Plan) -> dict[str, Any]:
    body = json.dumps(PAYLOAD).encode()
    # Topics nobody subscribes to: the streams only grow (capped by maxLenApprox).
    publish_url = f"{local.dapr_url('storefront')}/v1.0/publish/pubsub/bench-publish"
    result: dict[str, Any] = {"rps": plan.publish_rps, "payload_bytes": len(body)}
    store = aioredis.Redis(host="127.0.0.1", port=local.redis_port)
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def publish() -> bool:
                headers = {"content-type": "application/json"}
                response = await client.post(publish_url, content=body, headers=headers)
                return response.status_code == 204

            async def xadd() -> bool:
                # What the Redis Streams component does per publish: one XADD.
                await store.xadd("bench-direct", {"data": body}, maxlen=100_000, approximate=True)
                return True

            runs = await side_by_side(
                {"redis_xadd": xadd, "dapr_publish": publish},
                plan.publish_rps,
                plan.publish_seconds,
                plan.warmup_seconds,
            )
        result |= {label: run.summary() for label, run in runs.items()}
    finally:
        await store.aclose()
    result["added_ms"] = {
        q: round(result["dapr_publish"][f"{q}_ms"] - result["redis_xadd"][f"{q}_ms"], 3)
        for q in ("p50", "p90", "p99")
    }
    return result


def _app_and_sidecar_cpu(local: LocalStack) -> float:
    groups = [_processes(local, name) for name in local.stack.pids() if name not in INFRA]
    return sum(_cpu_seconds(group) for group in groups)


async def _idle_cpu(local: LocalStack, seconds: float = 3.0) -> float:
    """CPU-seconds a second the apps and sidecars use with no requests (health checks,
    configuration and stream polling), to subtract from a run's."""
    before = _app_and_sidecar_cpu(local)
    await asyncio.sleep(seconds)
    return (_app_and_sidecar_cpu(local) - before) / seconds


async def _order_run(
    local: LocalStack, rps: float, seconds: float, idle: float = 0.0
) -> tuple[Run, float]:
    """Orders at ``rps`` for ``seconds``; the run and the apps' and sidecars' CPU-seconds
    per 1,000 orders above ``idle`` (CPU-seconds a second)."""
    url = f"{local.app_url('storefront')}/orders"
    cpu_before = _app_and_sidecar_cpu(local)
    async with httpx.AsyncClient(timeout=15) as client:

        async def order() -> bool:
            body = {"customer_id": "c-bench", "items": [{"sku": "grinder", "quantity": 1}]}
            key = {"Idempotency-Key": f"bench-{uuid.uuid4()}"}
            response = await client.post(url, json=body, headers=key)
            return response.status_code == 201

        run = await fixed_rate(order, rps, seconds)
    cpu = _app_and_sidecar_cpu(local) - cpu_before - idle * run.seconds
    return run, cpu * 1000 / max(len(run.latencies_ms), 1)


async def _settle(local: LocalStack) -> float:
    """Wait until the apps and sidecars are idle again (below 0.15 CPU for a second), so
    the events a run left queued do not weigh on the next one; return the seconds waited."""
    groups = [_processes(local, name) for name in local.stack.pids() if name not in INFRA]
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_AT_MOST_SECONDS:
        before = sum(_cpu_seconds(group) for group in groups)
        await asyncio.sleep(1)
        if sum(_cpu_seconds(group) for group in groups) - before < IDLE_CPU:
            break
    return round(time.monotonic() - started, 1)


def _refill(local: LocalStack) -> None:
    for sku in ("espresso-beans", "grinder", "moka-pot"):
        httpx.put(
            f"{local.app_url('inventory')}/stock/{sku}", json={"quantity": 1_000_000}, timeout=10
        ).raise_for_status()


async def measure_orders(local: LocalStack, plan: Plan) -> dict[str, Any]:
    _refill(local)
    await _order_run(local, plan.order_rates[0], plan.warmup_seconds)
    await _settle(local)
    idle = await _idle_cpu(local)
    steps = []
    saturation = None
    for rps in plan.order_rates:
        run, cpu_per_1000 = await _order_run(local, rps, plan.order_seconds, idle)
        step = run.summary() | {"stack_cpu_s_per_1000_orders": round(cpu_per_1000, 2)}
        steps.append(step)
        # Open loop: past saturation requests queue, so latency climbs and then they
        # fail. A 1 s p99 is the service level this bench holds POST /orders to.
        if run.errors > 0.01 * run.sent or run.percentile(0.99) > SATURATION_P99_MS:
            saturation = rps
            break
        step["settled_after_s"] = await _settle(local)
    sustained = [s["target_rps"] for s in steps if s["target_rps"] != saturation]
    return {
        "steps": steps,
        "max_sustained_rps": max(sustained, default=0),
        "saturated_at_rps": saturation,
    }


async def measure_telemetry_rate(local: LocalStack, plan: Plan) -> dict[str, Any]:
    _refill(local)
    await _order_run(local, plan.telemetry_rps, plan.warmup_seconds)
    await _settle(local)
    idle = await _idle_cpu(local)
    run, cpu_per_1000 = await _order_run(local, plan.telemetry_rps, plan.telemetry_seconds, idle)
    return run.summary() | {
        "stack_cpu_s_per_1000_orders": round(cpu_per_1000, 2),
        "idle_cpu": round(idle, 3),
        "settled_after_s": await _settle(local),
    }


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
        "generator": f"this process's main thread on CPU {GENERATOR_CPU} (asyncio + httpx)",
        "stack_cpus": sorted(_stack_cpus()),
        # Other work on the machine skews every number: read them with this beside.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_all(
    tools: Tools, run_file: Path, out: Path, plan: Plan, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every measurement, in one run; returns the results document."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"environment": environment(tools), "plan": asdict(plan)}
    with (out / "stack.log").open("w") as log, tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        # Cold: a fresh run directory and an empty bytecode cache, so every module is
        # compiled again. Warm: both reused. (The OS page cache stays warm: dropping it
        # would slow everything else on the machine.)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        try:
            say("stack start, cold")
            with running_stack(run_file, run_dir, tools, log, telemetry=True) as (_, cold):
                pass
            say("stack start, warm; then invocation, publish, orders")
            with running_stack(run_file, run_dir, tools, log, telemetry=True) as (local, warm):
                results["start_seconds"] = {"cold": round(cold, 2), "warm": round(warm, 2)}
                say(f"invocation: {plan.invoke_rps:.0f} rps, direct then through Dapr")
                results["invocation"] = asyncio.run(measure_invocation(local, plan))
                say(f"publish: {plan.publish_rps:.0f} rps, Redis XADD then Dapr publish")
                results["publish"] = asyncio.run(measure_publish(local, plan))
                say(f"orders: stepping {plan.order_rates} rps until saturation")
                results["orders"] = asyncio.run(measure_orders(local, plan))
                # It starts once the last step's backlog of events has drained.
                say(f"telemetry on: orders at {plan.telemetry_rps:.0f} rps")
                telemetry_on = asyncio.run(measure_telemetry_rate(local, plan))
        finally:
            os.environ.pop("PYTHONPYCACHEPREFIX", None)
        say("telemetry off: a stack without tracing and metrics")
        with running_stack(run_file, Path(scratch) / "quiet", tools, log, telemetry=False) as (
            local,
            _,
        ):
            telemetry_off = asyncio.run(measure_telemetry_rate(local, plan))
    results["environment"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    results["telemetry"] = {
        "on": telemetry_on,
        "off": telemetry_off,
        "off_means": "sidecars: tracing samplingRate 0 and metrics off; apps: OTEL_SDK_DISABLED",
        "cpu_ratio_on_to_off": round(
            telemetry_on["stack_cpu_s_per_1000_orders"]
            / max(telemetry_off["stack_cpu_s_per_1000_orders"], 1e-9),
            2,
        ),
        "p50_added_ms": round(telemetry_on["p50_ms"] - telemetry_off["p50_ms"], 2),
        "p99_added_ms": round(telemetry_on["p99_ms"] - telemetry_off["p99_ms"], 2),
    }
    return results


# Reports.


def _ms(value: float) -> str:
    return f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    """The results as one markdown table per measurement, with the anchors beside."""
    env = results["environment"]
    inv = results["invocation"]
    pub = results["publish"]
    orders = results["orders"]
    tel = results["telemetry"]
    start = results["start_seconds"]
    lines = [
        f"orderflow bench, {env['when']}: {env['cpu_model']}, {env['cpus']} CPUs, "
        f"{env['memory_gb']} GB, Python {env['python']}, {env['daprd']}; generator on CPU "
        f"{GENERATOR_CPU}, stack on CPUs {env['stack_cpus']}; load average "
        f"{env['load_average_1m_at_start']} at start, {env['load_average_1m_at_end']} at end",
        "",
        f"| 1. Invocation, 1 KiB at {inv['rps']:.0f} rps | p50 ms | p90 ms | p99 ms "
        "| achieved rps | errors | generator CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("direct", "dapr"):
        run = inv[label]
        lines.append(
            f"| {'direct to inventory' if label == 'direct' else 'through 2 sidecars'} "
            f"| {_ms(run['p50_ms'])} | {_ms(run['p90_ms'])} | {_ms(run['p99_ms'])} "
            f"| {run['achieved_rps']} | {run['errors']} | {run['generator_cpu_percent']}% |"
        )
    added, ratio = inv["added_ms"], inv["ratio_to_anchor"]
    lines += [
        f"| **added by Dapr** | **{_ms(added['p50'])}** | **{_ms(added['p90'])}** "
        f"| **{_ms(added['p99'])}** | | | |",
        "| anchor: Dapr v1.17, 1,000 rps | 1.06 | 1.48 | 2.90 | | | |",
        f"| ratio to anchor | {ratio['p50']} | {ratio['p90']} | {ratio['p99']} | | | |",
        "",
        f"| 2. Publish, 1 KiB at {pub['rps']:.0f} rps | p50 ms | p90 ms | p99 ms "
        "| achieved rps | errors |",
        "|---|---|---|---|---|---|",
    ]
    for label, title in (("redis_xadd", "Redis XADD, direct"), ("dapr_publish", "Dapr publish")):
        run = pub[label]
        lines.append(
            f"| {title} | {_ms(run['p50_ms'])} | {_ms(run['p90_ms'])} | {_ms(run['p99_ms'])} "
            f"| {run['achieved_rps']} | {run['errors']} |"
        )
    padded = pub["added_ms"]
    lines += [
        f"| **added by Dapr** | **{_ms(padded['p50'])}** | **{_ms(padded['p90'])}** "
        f"| **{_ms(padded['p99'])}** | | |",
        "",
        "| 3. Orders (POST /orders) target rps | achieved rps | p50 ms | p99 ms | errors "
        "| apps + sidecars CPU-s per 1,000 orders, above idle |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {step['target_rps']:.0f} | {step['achieved_rps']} | {_ms(step['p50_ms'])} "
        f"| {_ms(step['p99_ms'])} | {step['errors']} | {step['stack_cpu_s_per_1000_orders']} |"
        for step in orders["steps"]
    ]
    lines += [
        f"| max sustained: **{orders['max_sustained_rps']:.0f} rps**; "
        + (
            f"saturated at {orders['saturated_at_rps']:.0f} rps"
            if orders["saturated_at_rps"]
            else "not saturated by the last step"
        )
        + " | | | | | |",
        "",
        "| 4. Resources during (1) through Dapr | CPU-s per 1,000 requests | RSS MB |",
        "|---|---|---|",
    ]
    for name, usage in inv["resources"].items():
        lines.append(f"| {name} | {usage['cpu_s_per_1000_requests']} | {usage['rss_mb']} |")
    sidecar = inv["sidecar_ratio_to_anchor"]
    lines += [
        f"| anchor: a Dapr sidecar | {ANCHOR_SIDECAR_VCPU_AT_1000_RPS} "
        f"| {ANCHOR_SIDECAR_RSS_MB:.0f} |",
        f"| ratio to anchor (mean of the two sidecars) | {sidecar['cpu']} | {sidecar['rss']} |",
        "",
        f"| 5. Telemetry, orders at {tel['on']['target_rps']:.0f} rps | p50 ms | p99 ms "
        "| apps + sidecars CPU-s per 1,000 orders, above idle |",
        "|---|---|---|---|",
    ]
    for label in ("on", "off"):
        run = tel[label]
        lines.append(
            f"| {label} | {_ms(run['p50_ms'])} | {_ms(run['p99_ms'])} "
            f"| {run['stack_cpu_s_per_1000_orders']} |"
        )
    lines += [
        f"| on - off | {tel['p50_added_ms']:+.2f} | {tel['p99_added_ms']:+.2f} "
        f"| on / off: x{tel['cpu_ratio_on_to_off']} |",
        "",
        "| 6. Local stack start (13 processes) | seconds |",
        "|---|---|",
        f"| cold (fresh data, empty bytecode cache) | {start['cold']} |",
        f"| warm | {start['warm']} |",
    ]
    return "\n".join(lines) + "\n"


# The numbers a comparison looks at, each with the direction that is better.
KEY_FIGURES: dict[str, tuple[tuple[str, ...], str]] = {
    "invocation added p50 ms": (("invocation", "added_ms", "p50"), "lower"),
    "invocation added p90 ms": (("invocation", "added_ms", "p90"), "lower"),
    "invocation added p99 ms": (("invocation", "added_ms", "p99"), "lower"),
    "publish added p50 ms": (("publish", "added_ms", "p50"), "lower"),
    "publish added p99 ms": (("publish", "added_ms", "p99"), "lower"),
    "orders max sustained rps": (("orders", "max_sustained_rps"), "higher"),
    "telemetry on/off CPU": (("telemetry", "cpu_ratio_on_to_off"), "lower"),
    "start cold s": (("start_seconds", "cold"), "lower"),
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
