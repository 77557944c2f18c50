"""How an order advances on order-shipped and customer-notified, exactly once each."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar
from storefront.main import create_app
from storefront.model import Order, Step
from storefront.settings import StorefrontSettings


def event(event_id: str, event_type: str, order_id: str = "o-1") -> dict[str, object]:
    data: dict[str, object] = {"order_id": order_id}
    if event_type == "order-shipped":
        data |= {"customer_id": "c-1", "shipment_id": "s-1"}
    return {"id": event_id, "type": event_type, "source": "x", "specversion": "1.0", "data": data}


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    paid = Order(
        order_id="o-1",
        customer_id="c-1",
        items={"grinder": 1},
        amount_cents=8900,
        status="paid",
        history=[Step(status="placed"), Step(status="paid")],
    )
    fake.put("orderstore", "order-o-1", paid.model_dump(mode="json"))
    return fake


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    with TestClient(
        create_app(StorefrontSettings(APP_PORT=8001, **TOKENS), sidecar.client()),
        headers=SIDECAR_HEADERS,
    ) as c:
        yield c


def deliver(client: TestClient, body: dict[str, object], route: str) -> str:
    response = client.post(f"/events/{route}", json=body)
    assert response.status_code == 200
    return str(response.json()["status"])


def statuses(client: TestClient) -> list[str]:
    return [step["status"] for step in client.get("/orders/o-1").json()["history"]]


def test_shipped_then_notified_in_order(client: TestClient) -> None:
    assert deliver(client, event("e-1", "order-shipped"), "order-shipped") == "SUCCESS"
    assert deliver(client, event("e-2", "customer-notified"), "customer-notified") == "SUCCESS"

    assert statuses(client) == ["placed", "paid", "shipped", "notified"]
    assert client.get("/orders/o-1").json()["status"] == "notified"


def test_duplicates_and_late_arrivals_change_nothing_twice(client: TestClient) -> None:
    deliver(client, event("e-2", "customer-notified"), "customer-notified")
    deliver(client, event("e-1", "order-shipped"), "order-shipped")
    deliver(client, event("e-1", "order-shipped"), "order-shipped")
    deliver(client, event("e-3", "order-shipped"), "order-shipped")

    assert statuses(client) == ["placed", "paid", "shipped", "notified"]
    assert client.get("/orders/o-1").json()["status"] == "notified"


def test_an_event_for_an_unknown_order_is_dropped(client: TestClient) -> None:
    assert deliver(client, event("e-1", "order-shipped", "o-404"), "order-shipped") == "DROP"


def test_each_step_is_one_write_of_its_own_key_so_events_never_race(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    deliver(client, event("e-1", "order-shipped"), "order-shipped")
    deliver(client, event("e-2", "customer-notified"), "customer-notified")

    writes = [call for call in sidecar.app_calls if call.path == "/v1.0/state/orderstore"]
    assert [(w.body[0]["key"], w.body[0]["value"]["status"]) for w in writes] == [
        ("order-o-1-shipped", "shipped"),
        ("order-o-1-notified", "notified"),
    ]
    assert {w.body[0]["options"]["concurrency"] for w in writes} == {"first-write"}
    # The order itself is never written again, so no ETag race is possible.
    assert sidecar.value("orderstore", "order-o-1")["status"] == "paid"
