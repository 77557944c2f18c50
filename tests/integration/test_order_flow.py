"""The order flow against the real daprd and Redis: states, exact call counts under the
resiliency policies, dead letters, idempotency, scarce stock and bad input.

The tests share one local stack and run in file order; each leaves every fault flag off
and its orders finished, and the breaker closed."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually, metric
from orderflow_devtools.stack import LOOPBACK, PROMETHEUS_PORT, LocalStack

pytestmark = pytest.mark.integration

GRINDER = {"grinder": 1}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_start(shop: Shop) -> None:
    """No fault flag on, and payments' breaker closed with its failure count at zero:
    Dapr's breaker counts every non-2xx answer of the callee, and only a success resets
    the count (a declined card is a 200 from payments, so it counts as a success)."""
    for service in ("payments", "notifications"):
        shop.clear_faults(service)
    assert shop.place(GRINDER).status_code == 201


def test_happy_path_goes_placed_paid_shipped_notified_with_two_notifications(
    shop: Shop, local_stack: LocalStack
) -> None:
    invoked_before = metric(
        local_stack.metrics_url("payments"),
        "dapr_runtime_service_invocation_req_recv_total",
        src_app_id="storefront",
    )

    placed = shop.place({"grinder": 1, "moka-pot": 2})

    assert placed.status_code == 201
    order_id = placed.json()["order_id"]
    order = shop.wait_for_history(order_id, ["placed", "paid", "shipped", "notified"])
    assert order["status"] == "notified"
    assert order["amount_cents"] == 8900 + 2 * 3200
    assert [n["event_type"] for n in shop.notifications(order_id)] == [
        "order-placed",
        "order-shipped",
    ]
    assert shop.charge_attempts(order_id) == 1
    assert shop.shipment(order_id) is not None
    # The charge crossed both sidecars: payments' sidecar received exactly one call more.
    invoked = metric(
        local_stack.metrics_url("payments"),
        "dapr_runtime_service_invocation_req_recv_total",
        src_app_id="storefront",
    )
    assert invoked - invoked_before == 1


def test_payments_failing_twice_then_recovering_is_retried_to_success(shop: Shop) -> None:
    shop.set_faults("payments", fail_attempts=2)

    placed = shop.place(GRINDER)

    assert placed.status_code == 201
    assert shop.charge_attempts(placed.json()["order_id"]) == 1 + 2
    shop.wait_for_status(placed.json()["order_id"], "notified")


def test_a_declined_card_is_not_retried_and_its_stock_comes_back(shop: Shop) -> None:
    before = shop.stock()["grinder"]

    declined = shop.place(GRINDER, payment_token="tok_declined")

    assert declined.status_code == 402
    detail = declined.json()["detail"]
    assert detail["reason"] == "payment declined"
    assert shop.charge_attempts(detail["order_id"]) == 1
    assert shop.stock()["grinder"] == before
    order = shop.order(detail["order_id"])
    assert (order["status"], order["reason"]) == ("failed", "payment declined")


def test_slow_payments_fail_within_the_documented_bound(shop: Shop) -> None:
    # resiliency.yaml: 2s timeout per attempt, 1 + 3 attempts; Dapr's exponential backoff
    # waits 0.5s, 0.75s, 1.125s between them, each +/-50%: 8s + 1.19s to 3.56s.
    shop.set_faults("payments", latency_ms=3000)

    started = time.monotonic()
    slow = shop.place(GRINDER)
    elapsed = time.monotonic() - started

    assert slow.status_code == 503
    assert slow.json()["detail"]["reason"] == "payments unavailable"
    assert 4 * 2.0 + 1.1 <= elapsed < 4 * 2.0 + 3.6 + 1.0
    assert shop.charge_attempts(slow.json()["detail"]["order_id"]) == 4


def firing_alerts(name: str) -> list[dict[str, str]]:
    """The labels of each alert ``name`` that the local Prometheus has firing.
    https://prometheus.io/docs/prometheus/latest/querying/api/#alerts"""
    response = httpx.get(f"http://{LOOPBACK}:{PROMETHEUS_PORT}/api/v1/alerts", timeout=10)
    alerts = response.raise_for_status().json()["data"]["alerts"]
    return [
        alert["labels"]
        for alert in alerts
        if alert["labels"]["alertname"] == name and alert["state"] == "firing"
    ]


def test_the_breaker_opens_fails_fast_probes_and_closes(
    shop: Shop, local_stack: LocalStack
) -> None:
    def opened() -> float:
        """How often storefront's breakers towards payments opened. Not the state gauge
        (dapr_resiliency_cb_state): it is one per target, written on every call, and the
        refund of a failed order (DELETE charges/{id}) is an endpoint with a breaker of
        its own, closed, called last."""
        return metric(
            local_stack.metrics_url("storefront"),
            "dapr_resiliency_activations_total",
            policy="circuitbreaker",
            target="app_payments",
            status="open",
        )

    opened_before = opened()
    shop.set_faults("payments", error_rate=100)

    first = shop.place(GRINDER)
    second = shop.place(GRINDER)
    started = time.monotonic()
    third = shop.place(GRINDER)
    fast = time.monotonic() - started

    ids = [r.json()["detail"]["order_id"] for r in (first, second, third)]
    assert [r.status_code for r in (first, second, third)] == [503, 503, 503]
    # Trip at 5 consecutive failures: 4 attempts of the first order, 1 of the second;
    # then nothing reaches payments until the breaker's 10s timeout.
    assert [shop.charge_attempts(order_id) for order_id in ids] == [4, 1, 0]
    assert fast < 2.0
    assert opened() - opened_before == 1
    # The page that operators get (deploy/monitoring/rules/alerts.yml), in the stack's own
    # Prometheus: it reads the transitions, so the refund's closed breaker hides nothing.
    firing = eventually(
        lambda: firing_alerts("CircuitBreakerOpen"), "CircuitBreakerOpen firing in Prometheus", 30
    )
    assert firing == [
        {
            "alertname": "CircuitBreakerOpen",
            "app_id": "storefront",
            "name": "orderflow",
            "severity": "page",
            "target": "app_payments",
        }
    ]

    shop.clear_faults("payments")
    time.sleep(10.5)
    probe = shop.place(GRINDER)
    after = shop.place(GRINDER)

    assert (probe.status_code, after.status_code) == (201, 201)
    assert [shop.charge_attempts(r.json()["order_id"]) for r in (probe, after)] == [1, 1]


def test_poison_events_are_dead_lettered_after_exactly_one_plus_three_attempts(
    shop: Shop,
) -> None:
    shop.set_faults("notifications", poison_rate=100)

    placed = shop.place(GRINDER)

    assert placed.status_code == 201
    order_id = placed.json()["order_id"]

    def both_dead() -> list[dict[str, object]]:
        found = shop.dead_letters(order_id)
        return found if len(found) == 2 else []

    dead = eventually(both_dead, "both of the order's events on the dead-letter topic", 30)
    assert [(d["event_type"], d["attempts"]) for d in dead] == [
        ("order-placed", 1 + 3),
        ("order-shipped", 1 + 3),
    ]
    assert shop.notifications(order_id) == []
    # Only notifications gave up: the order shipped, and was never marked notified.
    assert shop.order(order_id)["status"] == "shipped"


def test_concurrent_orders_on_scarce_stock_never_oversell(shop: Shop) -> None:
    shop.set_stock("grinder", 5)

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: shop.place(GRINDER), range(12)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409] * 7
    losers = [r.json()["detail"] for r in responses if r.status_code == 409]
    assert {(d["reason"], tuple(d["skus"])) for d in losers} == {("out of stock", ("grinder",))}
    assert shop.stock()["grinder"] == 0
    for response in responses:
        if response.status_code == 201:
            shop.wait_for_status(response.json()["order_id"], "notified")
    shop.set_stock("grinder", 1000)


def test_the_same_idempotency_key_twice_makes_one_order(shop: Shop) -> None:
    first = shop.place(GRINDER, idempotency_key="retry-me-1")
    again = shop.place(GRINDER, idempotency_key="retry-me-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["order_id"] == first.json()["order_id"]
    assert shop.charge_attempts(first.json()["order_id"]) == 1
    shop.wait_for_status(first.json()["order_id"], "notified")


BAD_INPUT = [
    (b"{not json", 422, "json_invalid"),
    (b'{"customer_id": 7, "items": [{"sku": "grinder", "quantity": 1}]}', 422, "string_type"),
    (b'{"customer_id": "c", "items": [{"sku": "grinder", "quantity": 1}], "x": 1}', 422,
     "extra_forbidden"),
    (b'{"customer_id": "c", "items": []}', 422, "too_short"),
    (b'{"customer_id": "c", "items": [{"sku": "grinder", "quantity": 0}]}', 422,
     "greater_than_equal"),
    (b'{"customer_id": "c", "items": [{"sku": "grinder", "quantity": 1000000000}]}', 422,
     "less_than_equal"),
    (b'{"customer_id": "c", "items": [{"sku": "grinder", "quantity": "many"}]}', 422,
     "int_parsing"),
]  # fmt: skip


def test_bad_input_gets_a_4xx_with_a_readable_body_and_writes_nothing(
    shop: Shop, local_stack: LocalStack
) -> None:
    store = redis.Redis(port=local_stack.redis_port, decode_responses=True)
    before = {key: store.type(key) for key in store.scan_iter()}
    orders = shop.url("storefront", "/orders")
    json_header = {"content-type": "application/json"}

    for body, status, error_type in BAD_INPUT:
        response = shop.http.post(orders, content=body, headers=json_header)
        assert (response.status_code, response.json()["detail"][0]["type"]) == (
            status,
            error_type,
        ), body
    unknown = shop.place({"teapot": 1})
    assert (unknown.status_code, unknown.json()) == (
        422,
        {
            "detail": [
                {
                    "type": "unknown_sku",
                    "loc": ["body", "items", 0, "sku"],
                    "msg": "unknown SKU",
                    "input": "teapot",
                }
            ]
        },
    )
    too_big = shop.http.post(orders, content=b" " * 70_000, headers=json_header)
    assert (too_big.status_code, too_big.json()) == (
        413,
        {"detail": "request body larger than 65536 bytes"},
    )
    bad_key = shop.place(GRINDER, idempotency_key="not a valid key!")
    assert (bad_key.status_code, bad_key.json()["detail"][0]["loc"]) == (
        422,
        ["header", "Idempotency-Key"],
    )
    missing = shop.http.get(shop.url("storefront", "/orders/no-such-order"))
    assert (missing.status_code, missing.json()) == (404, {"detail": "order not found"})

    assert {key: store.type(key) for key in store.scan_iter()} == before
    store.close()


def test_fault_flags_reach_the_service_and_clear(shop: Shop) -> None:
    shop.set_faults("payments", down=True)

    down = shop.http.post(
        shop.url("payments", "/charges"),
        json={"order_id": "o", "customer_id": "c", "amount_cents": 1, "payment_token": "t"},
        headers=shop.as_sidecar("payments"),
    )

    assert (down.status_code, down.json()) == (503, {"detail": "fault injected: down"})
    shop.clear_faults("payments")
    assert shop.get("payments", "/faults").json()["down"] is False


def fault_command(local_stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``orderflow fault`` with the test stack's tokens (made in its run directory)."""
    run_dir = str(local_stack.run_dir)
    return subprocess.run(
        [sys.executable, "-m", "orderflow_devtools", "fault", "--run-dir", run_dir, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_fault_command_sets_shows_refuses_and_clears(
    local_stack: LocalStack, shop: Shop
) -> None:
    assert fault_command(local_stack, "set", "payments", "latency_ms=5").returncode == 0
    eventually(lambda: shop.get("payments", "/faults").json()["latency_ms"] == 5, "5ms")
    shown = fault_command(local_stack, "show", "payments")
    bad = fault_command(local_stack, "set", "payments", "error_rate=lots")
    unknown = fault_command(local_stack, "set", "billing", "down=true")
    cleared = fault_command(local_stack, "clear", "payments")

    assert "latency_ms   5\n" in shown.stdout
    assert (bad.returncode, bad.stderr) == (
        2,
        "orderflow: payments: error_rate: Input should be a valid integer,"
        " unable to parse string as an integer\n",
    )
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "orderflow: billing: unknown service; one of: storefront, inventory, payments,"
        " fulfillment, notifications\n",
    )
    assert cleared.returncode == 0
    assert fault_command(local_stack, "show", "payments").stdout == shop_flags_off()


def shop_flags_off() -> str:
    return (
        "error_rate   0\nfail_attempts 0\nlatency_ms   0\ndown         False\n"
        "poison_rate  0\ncpu_hog_ms   0\n"
    )
