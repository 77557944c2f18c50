"""The stack heals by itself, against the real daprd and Redis: after Redis is down for a
minute under a steady load, and after a consumer's sidecar is killed, every order that
storefront accepted is shipped and notified exactly once, with no step by hand.

docs/resiliency.md ("Recovery") says why the sidecars needed help and what the bound is.
"""

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually, metric
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

GRINDER = {"grinder": 1}
STEPS = ["placed", "paid", "shipped", "notified"]
OUTAGE_SECONDS = 60.0
# Every order accepted before or during the outage is notified within this long after
# Redis is back (docs/resiliency.md, "Recovery", derives it).
RECOVERY_BOUND_SECONDS = 45.0


@dataclass
class Load:
    """Customers placing orders one after another, each pausing between orders."""

    shop: Shop
    customers: int = 2
    pause: float = 0.25
    accepted: set[str] = field(default_factory=set)
    refused: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def customer(self) -> None:
        with httpx.Client(timeout=60) as client:
            buyer = Shop(self.shop.endpoints)
            buyer.http = client
            while not self._stop.is_set():
                response = buyer.place(GRINDER)
                with self._lock:
                    if response.is_success:
                        self.accepted.add(response.json()["order_id"])
                    else:
                        self.refused.append(response.status_code)
                self._stop.wait(self.pause)

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def load(shop: Shop) -> Iterator[Load]:
    # Enough stock that no order is refused for the lack of it.
    shop.set_stock("grinder", 100_000)
    running = Load(shop)
    with ThreadPoolExecutor(max_workers=running.customers) as pool:
        for _ in range(running.customers):
            pool.submit(running.customer)
        try:
            yield running
        finally:
            running.stop()


def notified(shop: Shop, order_id: str) -> bool:
    return [step["status"] for step in shop.order(order_id)["history"]] == STEPS


def wait_all_notified(shop: Shop, order_ids: set[str], timeout: float) -> float:
    """Poll until every order's history is complete; return when that was (monotonic)."""
    pending = set(order_ids)
    deadline = time.monotonic() + timeout
    while pending:
        pending = {order_id for order_id in pending if not notified(shop, order_id)}
        if pending and time.monotonic() > deadline:
            raise TimeoutError(
                f"after {timeout:.0f}s {len(pending)} of {len(order_ids)} orders are not"
                f" notified, e.g. {shop.order(min(pending))}"
            )
        if pending:
            time.sleep(0.2)
    return time.monotonic()


def idles(local_stack: LocalStack, name: str) -> bool:
    """Whether ``name`` used under a tenth of a core over the next second."""
    try:
        return psutil.Process(local_stack.stack.pids()[name]).cpu_percent(interval=1.0) < 10.0
    except (KeyError, psutil.NoSuchProcess):  # being restarted
        return False


def assert_ledger_closed(shop: Shop, order_ids: set[str]) -> None:
    """Every order shipped once and notified once per event type, nothing dead-lettered."""
    for order_id in order_ids:
        order = shop.order(order_id)
        assert order["status"] == "notified", order
        assert [step["status"] for step in order["history"]] == STEPS, order
        assert shop.shipment(order_id) is not None, order_id
        kinds = sorted(n["event_type"] for n in shop.notifications(order_id))
        assert kinds == ["order-placed", "order-shipped"], (order_id, kinds)
        assert shop.dead_letters(order_id) == [], order_id


def test_a_minute_without_redis_under_load_heals_by_itself(
    shop: Shop, local_stack: LocalStack, load: Load
) -> None:
    eventually(lambda: load.count() >= 20, "orders before the outage", 60)

    local_stack.stack.stop(["redis"])
    before = load.count()
    time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a result
    local_stack.restart(["redis"])
    back = time.monotonic()
    during = load.count() - before
    # New orders keep coming once Redis is back, through the sidecars that lived
    # through the outage.
    eventually(lambda: load.count() >= before + during + 20, "orders after the outage", 60)
    load.stop()

    done = wait_all_notified(shop, load.accepted, RECOVERY_BOUND_SECONDS)

    # The measured recovery, for docs/resiliency.md (pytest --log-cli-level=INFO shows it).
    log.info(
        f"recovery: {len(load.accepted)} orders accepted ({during} during the outage),"
        f" {len(load.refused)} refused; all notified {done - back:.1f}s after Redis returned"
    )
    assert load.refused, "the outage refused no order: it did not happen"
    assert set(load.refused) == {503}
    assert_ledger_closed(shop, load.accepted)
    # Left alone, storefront's daprd would now spin on both cores for good (the outbox's
    # endless retry); storefront sees it spin and asks it to shut down, and the launcher
    # starts it again (storefront/watch.py).
    sidecars = [f"{app_id}-dapr" for app_id in local_stack.apps]
    eventually(lambda: all(idles(local_stack, name) for name in sidecars), "idle sidecars", 90)
    restarts = {name: local_stack.stack.restarts(name) for name in sidecars}
    shutdowns = metric(shop.url("storefront", "/metrics"), "orderflow_sidecar_shutdowns_total")
    log.info(
        f"recovery: sidecars idle {time.monotonic() - back:.1f}s after Redis returned,"
        f" restarted {restarts}; storefront asked its sidecar to shut down {shutdowns:.0f}x"
    )
    # Each restart of storefront's sidecar is one storefront asked for; no other sidecar
    # needed one.
    assert restarts == {**dict.fromkeys(sidecars, 0), "storefront-dapr": shutdowns}


def test_a_killed_consumer_sidecar_is_restarted_by_the_launcher(
    shop: Shop, local_stack: LocalStack, load: Load
) -> None:
    eventually(lambda: load.count() >= 10, "orders before the kill", 60)
    before = local_stack.stack.restarts("fulfillment-dapr")
    pid = local_stack.stack.pids()["fulfillment-dapr"]

    os.kill(pid, signal.SIGKILL)  # a crash; the test starts nothing again
    killed = time.monotonic()

    eventually(
        lambda: local_stack.stack.pids().get("fulfillment-dapr", pid) != pid,
        "the launcher to start fulfillment's sidecar again",
    )
    eventually(lambda: load.count() >= 40, "orders after the kill", 60)
    load.stop()

    done = wait_all_notified(shop, load.accepted, RECOVERY_BOUND_SECONDS)
    log.info(f"recovery: {len(load.accepted)} orders notified {done - killed:.1f}s after the kill")
    assert local_stack.stack.restarts("fulfillment-dapr") == before + 1
    assert load.refused == []
    assert_ledger_closed(shop, load.accepted)


def listeners(local_stack: LocalStack) -> set[tuple[str, str, int]]:
    """Every TCP socket listening and every UDP socket bound by a process of the stack
    (the ones it started and their children), as (protocol, address, port)."""
    found = set()
    for pid in local_stack.stack.pids().values():
        leader = psutil.Process(pid)
        for process in [leader, *leader.children(recursive=True)]:
            for connection in process.net_connections(kind="inet"):
                tcp = connection.type == socket.SOCK_STREAM
                if tcp and connection.status != psutil.CONN_LISTEN:
                    continue
                protocol = "tcp" if tcp else "udp"
                found.add((protocol, connection.laddr.ip, connection.laddr.port))
    return found


def test_every_listener_is_a_declared_port_on_loopback(local_stack: LocalStack) -> None:
    # Run last: the sidecar the launcher restarted above listens on its ports too.
    declared = {
        ("tcp", "127.0.0.1", port)
        for process in local_stack.stack.processes.values()
        for port in process.ports.values()
    }

    # 5 apps with 4 sidecar ports each, Redis, Jaeger's 4, Prometheus: no UDP (no mDNS).
    # Sentry declares none: it listens only inside a network namespace of its own, whose
    # sockets are not this one's (tests/security/test_mtls.py looks inside).
    assert local_stack.stack.processes["sentry"].ports == {}
    assert len(declared) == 5 * (1 + 4) + 1 + 4 + 1
    assert listeners(local_stack) == declared
    sentry = local_stack.stack.pids()["sentry"]
    assert Path(f"/proc/{sentry}/ns/net").readlink() != Path("/proc/self/ns/net").readlink()
