"""The shopper, and the listeners that record each phase and apply the gates at the end.

A shopper browses the stock, places orders (each with an ``Idempotency-Key``, sometimes
sent twice as a client retry would), and polls its open orders until they are notified.
Placed-to-notified time is reported as its own row, ``order placed -> notified``
(request type ``FLOW``), so the CSV and HTML reports show it beside the HTTP requests.
https://docs.locust.io/en/stable/increase-performance.html (FastHttpUser)
https://docs.locust.io/en/stable/extending-locust.html (events, custom arguments)
"""

import json
import logging
import random
import time
import uuid
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant_throughput, events, tag, task
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import EventHook
from locust.exception import StopUser
from locust.runners import LocalRunner
from locust.stats import RequestStats, StatsEntry

from orderflow_loadtest import gates
from orderflow_loadtest.shapes import (
    TASKS_PER_USER_SECOND,
    FaultSwitch,
    ScenarioShape,
    app_token_header,
)

log = logging.getLogger(__name__)

SKUS = ("espresso-beans", "grinder", "moka-pot")
FLOW = "FLOW"
FLOW_NAME = "order placed -> notified"
# An order not notified by then is reported as a failed flow (a lost or poisoned event).
FLOW_DEADLINE_SECONDS = 60.0
# Enough stock that a long run never sells out (inventory caps a level at 1,000,000).
REFILL = 1_000_000
# The share of orders sent a second time with the same key, as a client retry would.
REPLAY_SHARE = 0.1


def _listen(hook: EventHook, handler: Callable[..., None]) -> None:
    """``hook.add_listener(handler)``, typed: Locust's EventHook is not."""
    hook.add_listener(handler)  # type: ignore[no-untyped-call]


def _options(environment: Environment) -> Namespace:
    if environment.parsed_options is None:
        raise RuntimeError("orderflow's locustfiles run from Locust's command line only")
    options: Namespace = environment.parsed_options
    return options


def _arguments(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--inventory-host",
        default="http://127.0.0.1:8002",
        help="inventory's URL, for browsing and the stock refill at start ('' to skip both)",
    )
    parser.add_argument(
        "--fault-token",
        default="",
        env_var="ORDERFLOW_FAULT_TOKEN",
        help="storefront's X-Fault-Token, for scenarios that inject faults",
    )
    parser.add_argument(
        "--inventory-token",
        default="",
        env_var="ORDERFLOW_INVENTORY_TOKEN",
        help="inventory's app API token (dapr-api-token), for browsing and the refill",
    )
    parser.add_argument(
        "--results", default="", help="where to write the phases, their signals and the gates"
    )


_listen(events.init_command_line_parser, _arguments)


@dataclass
class _Open:
    placed_at: float
    phase: str


class _Customer(FastHttpUser):
    """What every shopper can do; the subclasses choose the tasks. (Locust adds a base
    class's tasks to its subclasses', so the tasks are not declared here.)"""

    abstract = True
    wait_time = constant_throughput(TASKS_PER_USER_SECOND)
    # Orders wait at most ~10 s on a down payments service (docs/resiliency.md).
    network_timeout = 20.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.open_orders: dict[str, _Open] = {}

    def _browse(self) -> None:
        options = _options(self.environment)
        if options.inventory_host:
            self.client.get(
                f"{options.inventory_host}/stock",
                name="GET /stock",
                headers=app_token_header(options.inventory_token),
            )
        else:
            self.client.get("/healthz", name="GET /healthz")

    def _place(
        self, key: str, body: dict[str, Any], expected: int, name: str, same: str | None = None
    ) -> str | None:
        with self.client.post(
            "/orders",
            json=body,
            headers={"Idempotency-Key": key},
            name=name,
            catch_response=True,
        ) as response:
            if response.status_code != expected:
                response.failure(_cause(response.status_code, response.text))
                return None
            order_id = str(response.json()["order_id"])
            if same is not None and order_id != same:
                response.failure(f"replay answered another order: {order_id} != {same}")
                return None
            if same is None:
                self.open_orders[order_id] = _Open(time.time(), _phase_name(self.environment))
            return order_id

    def _poll(self, order_id: str) -> str | None:
        """Read the order once; report its flow when it is finished or overdue."""
        opened = self.open_orders[order_id]
        with self.client.get(
            f"/orders/{order_id}", name="GET /orders/{id}", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(_cause(response.status_code, response.text))
                return None
            status = str(response.json()["status"])
        age = time.time() - opened.placed_at
        if status == "notified":
            self._flow(order_id, age, None)
        elif status == "failed":
            self._flow(order_id, age, "order failed after it was paid")
        elif age > FLOW_DEADLINE_SECONDS:
            self._flow(order_id, age, f"still {status} after {FLOW_DEADLINE_SECONDS:.0f}s")
        return status

    def _flow(self, order_id: str, seconds: float, error: str | None) -> None:
        opened = self.open_orders.pop(order_id)
        self.environment.events.request.fire(
            request_type=FLOW,
            name=FLOW_NAME,
            response_time=seconds * 1000,
            response_length=0,
            exception=RuntimeError(error) if error else None,
            context={"phase": opened.phase},
        )


class Shopper(_Customer):
    """Browses, orders and follows its orders, weighted like a real visit."""

    @tag("browse")
    @task(3)
    def browse(self) -> None:
        self._browse()

    @tag("order")
    @task(2)
    def place_order(self) -> None:
        key = f"load-{uuid.uuid4()}"
        body = {
            "customer_id": f"c-{random.randrange(1000)}",  # noqa: S311 - not security
            "items": [{"sku": random.choice(SKUS), "quantity": 1}],  # noqa: S311
        }
        order_id = self._place(key, body, expected=201, name="POST /orders")
        if order_id is not None and random.random() < REPLAY_SHARE:  # noqa: S311
            # The retry of a client that never saw the answer: the same order comes back.
            self._place(key, body, expected=200, name="POST /orders (replay)", same=order_id)

    @tag("status")
    @task(5)
    def check_order(self) -> None:
        if not self.open_orders:
            self._browse()
            return
        order_id = min(self.open_orders, key=lambda oid: self.open_orders[oid].placed_at)
        self._poll(order_id)


class SmokeShopper(_Customer):
    """One fixed journey, then stop: browse, order, replay the key, follow the order to
    notified. The smoke test asserts the exact request counts this gives."""

    @task
    def journey(self) -> None:
        self._browse()
        key = f"smoke-{uuid.uuid4()}"
        body = {"customer_id": "c-smoke", "items": [{"sku": "grinder", "quantity": 1}]}
        order_id = self._place(key, body, expected=201, name="POST /orders")
        if order_id is not None:
            self._place(key, body, expected=200, name="POST /orders (replay)", same=order_id)
            while order_id in self.open_orders:
                self._poll(order_id)
                time.sleep(0.2)  # gevent-patched: yields to the other shoppers
        raise StopUser


def _cause(status: int, text: str | None) -> str:
    """A failure's status and reason, without the order id: Locust groups failures by
    their text, so one row per kind of failure, not one per order."""
    try:
        detail = json.loads(text or "").get("detail")
    except (ValueError, AttributeError):
        detail = None
    reason = detail.get("reason") if isinstance(detail, dict) else detail
    return f"{status}: {reason if isinstance(reason, str) else (text or '')[:80]}"


# The listeners: phases, stock, faults, gates.


class _Recorder:
    """Per-phase request statistics, beside Locust's own whole-run ones."""

    def __init__(self, shape: ScenarioShape) -> None:
        self.shape = shape
        self.stats = RequestStats(use_response_times_cache=False)
        self.by_phase: dict[str, StatsEntry] = {}
        self.flows: dict[str, StatsEntry] = {}

    def entry(self, table: dict[str, StatsEntry], phase: str) -> StatsEntry:
        if phase not in table:
            table[phase] = StatsEntry(self.stats, phase, "")
        return table[phase]

    def record(
        self, request_type: str, response_time: float, exception: object, context: dict[str, Any]
    ) -> None:
        if request_type == FLOW:
            phase = str(context.get("phase", "?"))
            entry = self.entry(self.flows, phase)
        else:
            current = self.shape.current
            if current is None:
                return
            entry = self.entry(self.by_phase, current.phase.name)
        entry.log(round(response_time), 0)
        if exception is not None:
            entry.log_error(str(exception))

    def results(self) -> list[gates.PhaseResult]:
        results = []
        for record in self.shape.records:
            name = record.phase.name
            entry = self.by_phase.get(name)
            ended = record.ended_at or time.time()
            results.append(
                gates.PhaseResult(
                    name=name,
                    gated=record.phase.gated,
                    seconds=ended - record.started_at,
                    requests=entry.num_requests if entry else 0,
                    failures=entry.num_failures if entry else 0,
                    p95_ms=float(entry.get_response_time_percentile(0.95)) if entry else 0.0,
                    p99_ms=float(entry.get_response_time_percentile(0.99)) if entry else 0.0,
                    target_requests=record.target_requests,
                )
            )
        return results


def _phase_name(environment: Environment) -> str:
    shape = environment.shape_class
    current = shape.current if isinstance(shape, ScenarioShape) else None
    return current.phase.name if current else "?"


def _on_init(environment: Environment, **_: Any) -> None:
    shape = environment.shape_class
    if not isinstance(shape, ScenarioShape) or not isinstance(environment.runner, LocalRunner):
        # The gates need every request in this process: Locust's local runner.
        return
    recorder = _Recorder(shape)
    options = _options(environment)
    if shape.touched_services:
        shape.switch = FaultSwitch(environment.host or "", options.fault_token)

    def _on_request(
        request_type: str,
        response_time: float,
        exception: object = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        recorder.record(request_type, response_time, exception, context or {})

    def _on_start(**_: Any) -> None:
        _refill(environment)
        shape.clear_faults()

    def _on_stop(**_: Any) -> None:
        shape.clear_faults()

    def _on_quitting(**_: Any) -> None:
        runner = environment.runner
        cpu_warning = bool(runner and runner.cpu_warning_emitted)
        thresholds = gates.Thresholds(
            max_error_ratio=shape.max_error_ratio,
            p95_ms=shape.p95_ms,
            p99_ms=shape.p99_ms,
            min_rate_ratio=shape.min_rate_ratio,
        )
        phases = recorder.results()
        failed = gates.evaluate(phases, thresholds, cpu_warning)
        for phase in phases:
            log.info(
                "phase %-22s gated=%-5s %5d req %4d fail p95 %5.0f ms p99 %5.0f ms rate %.3f",
                phase.name,
                phase.gated,
                phase.requests,
                phase.failures,
                phase.p95_ms,
                phase.p99_ms,
                phase.rate_ratio,
            )
        for line in failed:
            log.error("gate failed: %s", line)
        if options.results:
            _write_results(
                Path(options.results),
                shape=shape,
                recorder=recorder,
                phases=phases,
                thresholds=thresholds,
                failed=failed,
            )
        environment.process_exit_code = 1 if failed else 0

    _listen(environment.events.request, _on_request)
    _listen(environment.events.test_start, _on_start)
    _listen(environment.events.test_stop, _on_stop)
    _listen(environment.events.quitting, _on_quitting)


_listen(events.init, _on_init)


def _refill(environment: Environment) -> None:
    options = _options(environment)
    if not options.inventory_host:
        return
    switch = FaultSwitch(options.inventory_host, "", app_token=options.inventory_token)
    for sku in SKUS:
        # PUT /stock/{sku} is inventory's admin route; same request shape as a flag write.
        switch.put_json(f"/stock/{sku}", {"quantity": REFILL})


def _write_results(
    path: Path,
    *,
    shape: ScenarioShape,
    recorder: _Recorder,
    phases: list[gates.PhaseResult],
    thresholds: gates.Thresholds,
    failed: list[str],
) -> None:
    records = {record.phase.name: record for record in shape.records}
    document = {
        "scenario": type(shape).__name__.lower(),
        "thresholds": vars(thresholds),
        "passed": not failed,
        "failed_gates": failed,
        "phases": [
            {
                "name": result.name,
                "started_at": records[result.name].started_at,
                "seconds": round(result.seconds, 1),
                "users": records[result.name].phase.users,
                "faults": {k: dict(v) for k, v in records[result.name].phase.faults.items()},
                "gated": result.gated,
                "expect": records[result.name].phase.expect,
                "requests": result.requests,
                "failures": result.failures,
                "error_ratio": round(result.error_ratio, 4),
                "p95_ms": result.p95_ms,
                "p99_ms": result.p99_ms,
                "target_requests": round(result.target_requests, 1),
                "rate_ratio": round(result.rate_ratio, 4),
                "orders_notified": _flow_summary(recorder.flows.get(result.name)),
            }
            for result in phases
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _flow_summary(entry: StatsEntry | None) -> dict[str, float]:
    if entry is None:
        return {"orders": 0, "late_or_failed": 0}
    return {
        "orders": entry.num_requests,
        "late_or_failed": entry.num_failures,
        "p50_ms": float(entry.get_response_time_percentile(0.5)),
        "p95_ms": float(entry.get_response_time_percentile(0.95)),
    }
