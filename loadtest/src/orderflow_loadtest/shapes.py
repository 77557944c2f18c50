"""The load shapes: each scenario is a timeline of phases, and each phase says how many
shoppers run, which fault flags are on (docs/faults.md), whether the pass/fail gates
apply to it, and what signal it should produce on the dashboards.

A shopper runs one task a second (``constant_throughput(1)`` in shopper.py), so a phase's
user count is also its target rate in requests per second.
https://docs.locust.io/en/stable/custom-load-shape.html
"""

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from locust import LoadTestShape

log = logging.getLogger(__name__)

# One task a second per shopper: users == target requests per second.
TASKS_PER_USER_SECOND = 1.0
# Spawn a phase's users within about a second: Locust's shape worker blocks while it
# ramps, so a slow ramp would eat into the phase it starts.
SPAWN_RATE = 50.0

Flags = Mapping[str, int | bool]


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    users: int
    # The fault flags on during this phase, by service; a service a scenario touches but
    # a phase leaves out has all its flags off.
    faults: Mapping[str, Flags] = field(default_factory=dict)
    # Whether the error, latency and rate gates apply: not while a fault is injected,
    # nor while the system is meant to be recovering from one.
    gated: bool = True
    expect: str = "no errors; latency and rate within the gates"


@dataclass
class PhaseRecord:
    """What happened in one phase, as the shape saw it."""

    phase: Phase
    started_at: float  # wall clock, so it lines up with Prometheus and Jaeger
    ended_at: float | None = None
    # Requests the shoppers alive in this phase should have sent: the integral of the
    # user count over time, times each shopper's rate.
    target_requests: float = 0.0


def app_token_header(token: str) -> dict[str, str]:
    """What an app's sidecar sends it (orderflow_common/auth.py): a load test that calls
    inventory's routes straight, as storefront's sidecar would, needs its token."""
    return {"dapr-api-token": token} if token else {}


class FaultSwitch:
    """Sets fault flags through storefront's token-guarded ``PUT /faults/{service}``
    (``app_token``: for an app's own routes instead, such as inventory's stock)."""

    def __init__(self, base_url: str, token: str, *, app_token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.app_token = app_token

    def set(self, service: str, flags: Flags) -> None:
        self.put_json(f"/faults/{service}", dict(flags))

    def put_json(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the target's own http(s) URL
            f"{self.base_url}{path}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={
                "X-Fault-Token": self.token,
                "content-type": "application/json",
                **app_token_header(self.app_token),
            },
        )
        # Under Locust, gevent patches the sockets urllib uses: this does not block the
        # shoppers. https://www.gevent.org/intro.html#monkey-patching
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()


class ScenarioShape(LoadTestShape):
    """Runs :attr:`phases` in order, switching fault flags at each phase boundary."""

    abstract = True
    phases: tuple[Phase, ...] = ()
    # Latency gates for this scenario's gated phases (HTTP requests, not whole orders).
    p95_ms: float = 500.0
    p99_ms: float = 1000.0
    max_error_ratio: float = 0.01
    # The achieved-rate gate; None for a scenario whose shoppers stop on their own.
    min_rate_ratio: float | None = 0.99

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Locust's own is untyped
        self.records: list[PhaseRecord] = []
        self.switch: FaultSwitch | None = None
        self._last_tick: float | None = None

    @property
    def touched_services(self) -> list[str]:
        return sorted({service for phase in self.phases for service in phase.faults})

    @property
    def current(self) -> PhaseRecord | None:
        return self.records[-1] if self.records else None

    def total_seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def phase_at(self, run_time: float) -> Phase | None:
        elapsed = 0.0
        for phase in self.phases:
            elapsed += phase.seconds
            if run_time < elapsed:
                return phase
        return None

    def tick(self) -> tuple[int, float] | None:
        now = time.time()
        self._account(now)
        phase = self.phase_at(self.elapsed())
        current = self.current
        if current is None or phase is not current.phase:
            if current is not None:
                current.ended_at = now
            if phase is None:
                self.clear_faults()
                return None
            self._enter(phase)
            self.records.append(PhaseRecord(phase, started_at=time.time()))
        assert phase is not None  # noqa: S101 - narrowed above; the shape ends when None
        return phase.users, SPAWN_RATE

    def elapsed(self) -> float:
        """Seconds since the run started (Locust's ``get_run_time``, typed)."""
        return time.perf_counter() - float(self.start_time)

    def users(self) -> int:
        return self.runner.user_count if self.runner is not None else 0

    def _account(self, now: float) -> None:
        """Add the shoppers' target since the last tick to the current phase."""
        current = self.current
        if current is not None and self._last_tick is not None:
            current.target_requests += (
                self.users() * (now - self._last_tick) * TASKS_PER_USER_SECOND
            )
        self._last_tick = now

    def _enter(self, phase: Phase) -> None:
        log.info("phase %s: %d users; expect: %s", phase.name, phase.users, phase.expect)
        if self.switch is None:
            return
        for service in self.touched_services:
            flags = phase.faults.get(service, {})
            try:
                self.switch.set(service, flags)
            except (urllib.error.URLError, TimeoutError) as error:
                # A chaos run that cannot inject its faults is not the run it claims to be.
                raise RuntimeError(f"cannot set {service} fault flags {flags}: {error}") from error

    def clear_faults(self) -> None:
        """Leave every flag this scenario touched off, whatever happened."""
        if self.switch is None:
            return
        for service in self.touched_services:
            try:
                self.switch.set(service, {})
            except (urllib.error.URLError, TimeoutError) as error:
                log.warning("could not clear %s fault flags: %s", service, error)


class Smoke(ScenarioShape):
    """CI's check that the whole path works: a few shoppers each run one fixed journey
    (browse, order, replay the order's key, follow it to notified) and stop."""

    phases = (Phase("journeys", 45, 4, expect="4 orders, each notified once"),)
    min_rate_ratio = None

    def tick(self) -> tuple[int, float] | None:
        # Done as soon as every shopper has finished its journey (they stop themselves).
        ticked = super().tick()
        if ticked is not None and self.elapsed() > 2 and self.users() == 0:
            self.clear_faults()
            if self.current is not None:
                self.current.ended_at = time.time()
            return None
        return ticked


class Steady(ScenarioShape):
    """A constant, comfortable rate: the baseline every other scenario is read against."""

    phases = (Phase("steady", 120, 10),)


class Step(ScenarioShape):
    """The rate in steps, to find where latency bends (see `make bench` for the knee)."""

    phases = tuple(Phase(f"{users} rps", 45, users) for users in (5, 10, 15, 20))


class Spike(ScenarioShape):
    """The scaling demo: a burst with heavy CPU work per order on fulfillment pushes its
    CPU over the HPA's target, then the load falls back and the HPA scales down after its
    stabilisation window. The HPA (deploy/base/services/fulfillment.yaml) targets 70% of
    the app container's 100m request; the spike's 4 orders a second at 20 + 150 ms of CPU
    each ask for about 0.7 CPU, enough for its 6 replicas."""

    phases = (
        Phase("warm", 30, 5),
        Phase(
            "spike",
            90,
            20,
            faults={"fulfillment": {"cpu_hog_ms": 150}},
            gated=False,
            expect="fulfillment CPU above its HPA target; the HPA adds replicas; "
            "order-to-notified time grows while the backlog lasts",
        ),
        Phase(
            "cool-down",
            60,
            5,
            gated=False,
            expect="fulfillment CPU falls; the backlog drains; the HPA scales down later",
        ),
    )


class Soak(ScenarioShape):
    """A long, moderate run: memory that only grows, or a slow leak of connections."""

    phases = (
        Phase(
            "soak",
            30 * 60,
            8,
            expect="flat memory (process_resident_memory_bytes) and latency for 30 min",
        ),
    )


class Chaos(ScenarioShape):
    """The failure tour, one fault at a time, each followed by a recovery."""

    phases = (
        Phase("baseline", 20, 6),
        Phase(
            "payments 30% errors",
            30,
            6,
            faults={"payments": {"error_rate": 30}},
            gated=False,
            expect="dapr_resiliency_count rises on storefront (retries); almost every "
            "order still succeeds (4 attempts all failing: 0.8%)",
        ),
        Phase(
            "payments down",
            25,
            6,
            faults={"payments": {"down": True}},
            gated=False,
            expect="orders answer 503; the breaker opens after 5 failures"
            " (dapr_resiliency_activations_total, CircuitBreakerOpen fires), then orders fail fast",
        ),
        Phase(
            "payments recovering",
            20,
            6,
            gated=False,
            expect="the breaker half-opens within 10 s, one probe passes, orders succeed",
        ),
        Phase(
            "fulfillment CPU hog",
            30,
            6,
            faults={"fulfillment": {"cpu_hog_ms": 300}},
            gated=False,
            expect="fulfillment CPU near one core; orders reach shipped later "
            "(order-to-notified time grows); no client errors",
        ),
        Phase(
            "poison messages",
            20,
            6,
            faults={"notifications": {"poison_rate": 50}},
            gated=False,
            expect="about half the order-placed and order-shipped events go to "
            "orders-dead-letter after 1 + 3 deliveries; those orders stay shipped",
        ),
        Phase("recovered", 30, 6, expect="errors and latency back to the baseline"),
    )


class ChaosShort(ScenarioShape):
    """The same tour in 100 s instead of 175, for the workshop (docs/labs/05) and CI: each
    fault still lasts long enough for its signal, the recovery outlasts the breaker's 10 s
    open timeout (resiliency.yaml), and the last phase, gated, is the longest."""

    phases = tuple(
        replace(phase, seconds=seconds)
        for phase, seconds in zip(Chaos.phases, (10, 15, 15, 15, 15, 10, 20), strict=True)
    )


SCENARIOS: dict[str, type[ScenarioShape]] = {
    "smoke": Smoke,
    "steady": Steady,
    "step": Step,
    "spike": Spike,
    "soak": Soak,
    "chaos": Chaos,
    "chaos-short": ChaosShort,
}
