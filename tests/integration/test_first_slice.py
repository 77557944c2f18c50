"""The first vertical slice against the real daprd and Redis: storefront charges through
payments by service invocation (two sidecars) and announces the order on Redis pub/sub,
which notifications receives exactly once."""

from typing import Any

import httpx
import pytest

from orderflow_devtools.observe import eventually, metric
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

ORDER = {"customer_id": "c-42", "items": [{"sku": "espresso-beans", "quantity": 3}]}


def notifications_for(local_stack: LocalStack, order_ids: set[str]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = httpx.get(
        f"{local_stack.app_url('notifications')}/notifications"
    ).json()
    return [n for n in sent if n["order_id"] in order_ids]


def test_one_order_is_charged_once_and_notified_once(local_stack: LocalStack) -> None:
    placed = httpx.post(f"{local_stack.app_url('storefront')}/orders", json=ORDER)

    assert placed.status_code == 201
    order = placed.json()
    charges = httpx.get(f"{local_stack.app_url('payments')}/charges").json()
    assert [(c["order_id"], c["amount_cents"]) for c in charges] == [(order["order_id"], 4350)]
    notified = eventually(
        lambda: notifications_for(local_stack, {order["order_id"]}), "the notification"
    )
    assert [(n["event_type"], n["order_id"]) for n in notified] == [
        ("order-placed", order["order_id"])
    ]
    # The calls really crossed both sidecars: one invocation sent by storefront's and
    # received by payments', one message published and one delivered with success.
    assert (
        metric(
            local_stack.metrics_url("storefront"),
            "dapr_runtime_service_invocation_req_sent_total",
            dst_app_id="payments",
        )
        == 1
    )
    assert (
        metric(
            local_stack.metrics_url("payments"),
            "dapr_runtime_service_invocation_req_recv_total",
            src_app_id="storefront",
        )
        == 1
    )
    assert (
        metric(
            local_stack.metrics_url("storefront"),
            "dapr_component_pubsub_egress_count",
            topic="orders",
        )
        == 1
    )
    assert (
        metric(
            local_stack.metrics_url("notifications"),
            "dapr_component_pubsub_ingress_count",
            topic="orders",
            process_status="success",
        )
        == 1
    )


def test_many_orders_each_land_exactly_once(local_stack: LocalStack) -> None:
    storefront = local_stack.app_url("storefront")
    order_ids = {
        httpx.post(f"{storefront}/orders", json=ORDER).raise_for_status().json()["order_id"]
        for _ in range(20)
    }

    assert len(order_ids) == 20
    charged = [
        c["order_id"]
        for c in httpx.get(f"{local_stack.app_url('payments')}/charges").json()
        if c["order_id"] in order_ids
    ]
    assert sorted(charged) == sorted(order_ids)

    def all_notified() -> list[dict[str, Any]]:
        found = notifications_for(local_stack, order_ids)
        return found if len(found) == len(order_ids) else []

    notified = eventually(all_notified, "20 notifications")
    assert sorted(n["order_id"] for n in notified) == sorted(order_ids)
