"""Recovery against the real daprd and Redis: client mistakes never open a circuit
breaker, and a failed order holds no stock and no money afterwards (docs/resiliency.md,
"What trips a breaker" and "Compensation").

The tests share one local stack and run in file order; each leaves every fault flag off."""

from collections.abc import Iterator

import pytest

from orderflow_devtools.client import Json, Shop
from orderflow_devtools.observe import eventually, metric
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

GRINDER = {"grinder": 1}
# resiliency.yaml: the breaker opens at 5 consecutive failures; 1 + 3 attempts per call.
TRIP = 5
ATTEMPTS = 1 + 3
# Longer than storefront's whole retry budget for a call (4 x 2 s plus backoff, at most
# 11.4 s: docs/resiliency.md), so every attempt lands well after storefront gave up.
AFTER_GIVING_UP_MS = 15_000


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
