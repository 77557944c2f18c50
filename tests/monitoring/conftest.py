"""Traffic that gives every dashboard panel something to show: orders that succeed, a
declined card, events that end on the dead-letter topic, payments timing out, and payments
down until the circuit breaker opens (docs/faults.md, docs/resiliency.md)."""

from collections.abc import Callable

import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually

GRINDER = {"grinder": 1}


def drive_every_path(shop: Shop) -> None:
    for service in ("payments", "notifications"):
        shop.clear_faults(service)
    placed = [shop.place(GRINDER) for _ in range(3)]
    assert [response.status_code for response in placed] == [201, 201, 201]
    shop.wait_for_status(placed[-1].json()["order_id"], "notified")

    assert shop.place(GRINDER, payment_token="tok_declined").status_code == 402
    # A success resets the breaker's count of consecutive failures (the 402 counted).
    assert shop.place(GRINDER).status_code == 201

    shop.set_faults("notifications", poison_rate=100)
    poisoned = shop.place(GRINDER).json()["order_id"]
    eventually(lambda: len(shop.dead_letters(poisoned)) == 2, "two dead letters", 30)
    shop.clear_faults("notifications")

    # 2 s timeout per attempt, 1 + 3 attempts: four timeouts, four breaker failures...
    shop.set_faults("payments", latency_ms=2500)
    assert shop.place(GRINDER).status_code == 503
    # ...and the fifth consecutive failure opens the breaker.
    shop.set_faults("payments", down=True)
    assert shop.place(GRINDER).status_code == 503
    shop.clear_faults("payments")


@pytest.fixture(scope="module")
def drive(shop: Shop) -> Callable[[], None]:
    """The traffic above, for a test to run when it needs it."""
    return lambda: drive_every_path(shop)
