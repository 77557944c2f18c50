"""Recovery against the real daprd and Redis: client mistakes never open a circuit
breaker, and a failed order holds no stock and no money afterwards (docs/resiliency.md,
"What trips a breaker" and "Compensation").

The tests share one local stack and run in file order; each leaves every fault flag off
and every process of the stack running."""

import json
import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from orderflow_devtools.client import Json, Shop
from orderflow_devtools.observe import eventually, metric
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

GRINDER = {"grinder": 1}
# resiliency.yaml: the breaker opens at 5 consecutive failures; 1 + 3 attempts per call.
TRIP = 5
ATTEMPTS = 1 + 3
# Longer than storefront's whole retry budget for a call (4 x 2 s plus backoff, at most
# 11.4 s: docs/resiliency.md), so every attempt lands well after storefront gave up.
AFTER_GIVING_UP_MS = 15_000
# storefront's owed compensations, as its Redis state store keeps them (a hash whose
# "data" field holds the JSON value, under the app id's prefix).
OWED_KEY = "storefront||compensations-owed"
# An owed compensation is done within this long of inventory's return: the next
# settlement pass (every 5 s), after storefront's breaker towards inventory, opened by the
# passes that failed meanwhile, lets its probe through (10 s), plus the calls and margin
# (docs/resiliency.md, "Compensation").
OWED_BOUND_SECONDS = 25.0


@pytest.fixture(autouse=True)
def clean_start(shop: Shop) -> Iterator[None]:
    """Every breaker's count of consecutive failures at zero: a successful order resets
    it (one breaker per callee and method), where the timeouts of the test before may
    have left 4, one short of tripping. Every fault flag off afterwards."""
    assert shop.place(GRINDER).status_code == 201
    yield
    for service in ("inventory", "payments"):
        shop.clear_faults(service)


def breaker(local_stack: LocalStack, target: str) -> dict[str, float]:
    """The state of storefront's breaker towards ``target``, as its sidecar reports it:
    1 for the current state, 0 for the others."""
    return {
        state: metric(
            local_stack.metrics_url("storefront"),
            "dapr_resiliency_cb_state",
            policy="circuitbreaker",
            target=target,
            status=state,
        )
        for state in ("closed", "half-open", "open")
    }


def breaker_changes(local_stack: LocalStack) -> float:
    """How often any of storefront's breakers changed state."""
    return metric(
        local_stack.metrics_url("storefront"),
        "dapr_resiliency_activations_total",
        policy="circuitbreaker",
    )


def completed(shop: Shop, app_id: str, method: str, route: str) -> float:
    """Requests to ``route`` that ``app_id`` finished answering (the app's own metric)."""
    return metric(
        shop.url(app_id, "/metrics"),
        "http_server_request_duration_seconds_count",
        http_request_method=method,
        http_route=route,
    )


def wait_for_attempts(shop: Shop, app_id: str, route: str, count: float) -> None:
    """Until every attempt of the order's call has finished in ``app_id``: the answers
    of the late ones are what the test is about."""
    seen: list[float] = []

    def all_done() -> bool:
        seen.append(completed(shop, app_id, "POST", route))
        return seen[-1] == count

    try:
        eventually(all_done, f"{app_id} to finish {count:.0f} requests to {route}", 75)
    except TimeoutError as late:
        raise AssertionError(f"{app_id} finished {seen[-1]:.0f} of {count:.0f}") from late


def record(shop: Shop, app_id: str, path: str) -> Json:
    return dict(shop.get(app_id, path).raise_for_status().json())


def test_any_number_of_client_mistakes_then_a_valid_order_is_a_201_with_breakers_closed(
    shop: Shop, local_stack: LocalStack
) -> None:
    changes = breaker_changes(local_stack)
    stock = shop.stock()
    shop.set_stock("moka-pot", 0)
    mistakes = 3 * TRIP

    unknown = [shop.place({"teapot": 1}) for _ in range(mistakes)]
    declined = [shop.place(GRINDER, payment_token="tok_declined") for _ in range(mistakes)]
    sold_out = [shop.place({"moka-pot": 1}) for _ in range(mistakes)]
    malformed = [shop.place({"Grinder!": 1}) for _ in range(mistakes)]
    valid = shop.place(GRINDER)

    shop.set_stock("moka-pot", stock["moka-pot"])
    assert [r.status_code for r in unknown] == [422] * mistakes
    assert {r.json()["detail"][0]["type"] for r in unknown} == {"unknown_sku"}
    assert [r.status_code for r in declined] == [402] * mistakes
    assert [r.status_code for r in sold_out] == [409] * mistakes
    assert [r.status_code for r in malformed] == [422] * mistakes
    assert {r.json()["detail"][0]["type"] for r in malformed} == {"string_pattern_mismatch"}
    assert valid.status_code == 201
    assert breaker(local_stack, "app_inventory") == {"closed": 1, "half-open": 0, "open": 0}
    assert breaker(local_stack, "app_payments") == {"closed": 1, "half-open": 0, "open": 0}
    assert breaker_changes(local_stack) == changes
    # Every declined order gave its grinder back; the valid one holds one.
    assert shop.stock() == {**stock, "grinder": stock["grinder"] - 1}
    assert [shop.charge_attempts(r.json()["detail"]["order_id"]) for r in declined] == [
        1
    ] * mistakes
    shop.wait_for_status(valid.json()["order_id"], "notified")


def test_a_reservation_that_times_out_and_still_commits_is_released(shop: Shop) -> None:
    stock = shop.stock()
    finished = completed(shop, "inventory", "POST", "/reservations")
    shop.set_faults("inventory", latency_ms=3000)

    failed = shop.place({"grinder": 2})

    assert failed.status_code == 503
    detail = failed.json()["detail"]
    assert detail["reason"] == "inventory unavailable"
    wait_for_attempts(shop, "inventory", "/reservations", finished + ATTEMPTS)
    # The first attempt reserved 3 s in, long before storefront gave up; storefront
    # released it; the later attempts found it and took nothing more.
    assert record(shop, "inventory", f"/reservations/{detail['order_id']}") == {
        "order_id": detail["order_id"],
        "status": "released",
        "items": {"grinder": 2},
        "amount_cents": 2 * 8900,
        "skus": [],
    }
    assert shop.stock() == stock
    order = shop.order(detail["order_id"])
    assert (order["status"], order["reason"]) == ("failed", "inventory unavailable")
    assert shop.charge_attempts(detail["order_id"]) == 0


def test_a_charge_that_lands_after_the_sidecar_timed_out_is_refunded(shop: Shop) -> None:
    stock = shop.stock()
    finished = completed(shop, "payments", "POST", "/charges")
    shop.set_faults("payments", latency_ms=3000)

    failed = shop.place(GRINDER)

    assert failed.status_code == 503
    detail = failed.json()["detail"]
    assert detail["reason"] == "payments unavailable"
    wait_for_attempts(shop, "payments", "/charges", finished + ATTEMPTS)
    charge = record(shop, "payments", f"/charges/{detail['order_id']}")
    assert {key: value for key, value in charge.items() if key != "charge_id"} == {
        "order_id": detail["order_id"],
        "status": "refunded",
        "amount_cents": 8900,
    }
    assert len(str(charge["charge_id"])) == 36  # the one charge, a UUID
    assert shop.charge_attempts(detail["order_id"]) == ATTEMPTS
    assert record(shop, "inventory", f"/reservations/{detail['order_id']}")["status"] == (
        "released"
    )
    assert shop.stock() == stock


def test_a_charge_that_lands_after_storefront_gave_up_charges_nothing(shop: Shop) -> None:
    stock = shop.stock()
    finished = completed(shop, "payments", "POST", "/charges")
    shop.set_faults("payments", latency_ms=AFTER_GIVING_UP_MS)

    failed = shop.place(GRINDER)

    assert failed.status_code == 503
    order_id = failed.json()["detail"]["order_id"]
    # storefront voided the charge before any attempt landed; each one, landing later,
    # found the void and charged nothing.
    wait_for_attempts(shop, "payments", "/charges", finished + ATTEMPTS)
    assert record(shop, "payments", f"/charges/{order_id}") == {
        "order_id": order_id,
        "status": "voided",
        "charge_id": None,
        "amount_cents": 0,
    }
    assert shop.stock() == stock
    order = shop.order(order_id)
    assert (order["status"], order["reason"]) == ("failed", "payments unavailable")


def owed(local_stack: LocalStack) -> Json:
    """storefront's owed compensations: order id -> what it is owed."""
    store = redis.Redis(port=local_stack.redis_port, decode_responses=True)
    data = store.hget(OWED_KEY, "data")
    return dict(json.loads(data)) if data else {}


def test_a_release_that_fails_is_owed_and_done_once_inventory_returns_across_a_restart(
    shop: Shop, local_stack: LocalStack
) -> None:
    stock = shop.stock()
    reserved = completed(shop, "inventory", "POST", "/reservations")
    # Every charge attempt times out: the order fails ~10 s after its reservation, the
    # window in which inventory goes away.
    shop.set_faults("payments", latency_ms=3000)

    with ThreadPoolExecutor(max_workers=1) as pool:
        placing = pool.submit(shop.place, GRINDER)
        wait_for_attempts(shop, "inventory", "/reservations", reserved + 1)
        local_stack.stack.stop(["inventory"])
        failed = placing.result()

    assert failed.status_code == 503
    order_id = failed.json()["detail"]["order_id"]
    assert failed.json()["detail"]["reason"] == "payments unavailable"
    # Its release could not be done: owed, with the refund, and the order reads failed.
    assert owed(local_stack) == {order_id: {"refund": True}}
    order = shop.order(order_id)
    assert (order["status"], order["reason"]) == ("failed", "payments unavailable")
    shop.clear_faults("payments")
    # The debt outlives the process that owes it.
    local_stack.stack.stop(["storefront"])
    local_stack.restart(["storefront"])
    assert owed(local_stack) == {order_id: {"refund": True}}

    local_stack.restart(["inventory"])
    back = time.monotonic()
    eventually(
        lambda: order_id not in owed(local_stack), "the owed compensation", OWED_BOUND_SECONDS
    )

    log.info(f"owed compensation done {time.monotonic() - back:.1f}s after inventory returned")
    assert owed(local_stack) == {}
    assert shop.stock() == stock
    assert record(shop, "inventory", f"/reservations/{order_id}")["status"] == "released"
    assert record(shop, "payments", f"/charges/{order_id}")["status"] == "refunded"
    assert shop.order(order_id)["status"] == "failed"


def test_a_paid_order_write_that_fails_is_compensated_and_answered_503(
    shop: Shop, local_stack: LocalStack
) -> None:
    # Nothing else publishes meanwhile: the order before this one is notified.
    settled = shop.place(GRINDER)
    shop.wait_for_status(settled.json()["order_id"], "notified")
    stock = shop.stock()
    store = redis.Redis(port=local_stack.redis_port, decode_responses=True)
    # Redis refuses every XADD: the outbox's internal publish, which comes first in
    # the paid order's transaction, fails, so the transaction writes nothing.
    store.acl_setuser("default", enabled=True, commands=["-xadd"])
    try:
        failed = shop.place(GRINDER)
    finally:
        store.acl_setuser("default", enabled=True, commands=["+xadd"])

    assert failed.status_code == 503
    body = failed.json()
    assert body["detail"] == "a Dapr building block is unavailable"
    match = re.match(
        r"transaction on orderstore/order-(?P<id>[0-9a-f-]{36}): sidecar answered INTERNAL",
        body["cause"],
    )
    assert match is not None, body
    order_id = match["id"]
    assert shop.http.get(shop.url("storefront", f"/orders/{order_id}")).status_code == 404
    # Read back as not written: released and refunded before the 503, nothing owed.
    assert shop.stock() == stock
    assert record(shop, "inventory", f"/reservations/{order_id}")["status"] == "released"
    assert record(shop, "payments", f"/charges/{order_id}")["status"] == "refunded"
    assert owed(local_stack) == {}
    # The outbox publishes again.
    after = shop.place(GRINDER)
    assert after.status_code == 201
    shop.wait_for_status(after.json()["order_id"], "notified")
