"""Crashes against the real daprd and Redis: no order that storefront accepted is lost,
and a redelivered event has no second effect."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

GRINDER = {"grinder": 1}


STEPS = ["placed", "paid", "shipped", "notified"]


def wait_all_notified(shop: Shop, order_ids: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for order_id in order_ids:
        shop.wait_for_history(order_id, STEPS, max(1.0, deadline - time.monotonic()))


def test_killing_fulfillment_mid_stream_loses_and_doubles_nothing(
    shop: Shop, local_stack: LocalStack
) -> None:
    # Slow each event down, so that the kill finds some of them in flight.
    shop.set_faults("fulfillment", latency_ms=400)
    placed = {shop.place(GRINDER).json()["order_id"] for _ in range(10)}
    eventually(
        lambda: sum(shop.shipment(order_id) is not None for order_id in placed) >= 2,
        "fulfillment to be shipping",
    )

    # SIGKILL, as a crash: the events it took but never acknowledged stay pending in
    # Redis and are handed out again after processingTimeout (pubsub.yaml).
    local_stack.stack.kill("fulfillment")
    local_stack.stack.kill("fulfillment-dapr")
    placed |= {shop.place(GRINDER).json()["order_id"] for _ in range(10)}
    local_stack.restart(["fulfillment", "fulfillment-dapr"])
    placed |= {shop.place(GRINDER).json()["order_id"] for _ in range(10)}
    shop.clear_faults("fulfillment")

    assert len(placed) == 30
    wait_all_notified(shop, placed, timeout=90)
    shipped = {order_id for order_id in placed if shop.shipment(order_id) is not None}
    assert shipped == placed
    for order_id in placed:
        order = shop.order(order_id)
        assert order["status"] == "notified"
        assert [step["status"] for step in order["history"]] == STEPS
        notified = [n["event_type"] for n in shop.notifications(order_id)]
        assert notified == ["order-placed", "order-shipped"]


def test_a_redis_restart_during_a_burst_loses_no_accepted_order(
    shop: Shop, local_stack: LocalStack
) -> None:
    accepted: set[str] = set()
    refused: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def customer() -> None:
        with httpx.Client(timeout=30) as client:
            buyer = Shop(shop.endpoints)
            buyer.http = client
            while not stop.is_set():
                response = buyer.place(GRINDER)
                with lock:
                    if response.status_code == 201:
                        accepted.add(response.json()["order_id"])
                    else:
                        refused.append(response.status_code)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(4):
            pool.submit(customer)
        eventually(lambda: len(accepted) >= 10, "orders before the restart")
        local_stack.stack.stop(["redis"])
        time.sleep(1.0)
        local_stack.restart(["redis"])
        time.sleep(3.0)
        stop.set()

    assert len(accepted) >= 10
    # A refusal during the outage is a 5xx with a reason, never a lost order.
    assert set(refused) <= {503}
    wait_all_notified(shop, accepted, timeout=90)
    assert {i for i in accepted if shop.shipment(i) is not None} == accepted
