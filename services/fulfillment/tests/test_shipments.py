"""fulfillment: one shipment and one order-shipped per order, whatever the deliveries."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fulfillment.main import create_app
from fulfillment.settings import FulfillmentSettings
from orderflow_common.faults import get_faults
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar

PUBLISH = "/v1.0/publish/pubsub/order-shipped"
PLACED = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 8900, "items": {"grinder": 1}}


def event(event_id: str, data: dict[str, object] = PLACED) -> dict[str, object]:
    return {
        "id": event_id,
        "type": "order-placed",
        "source": "s",
        "specversion": "1.0",
        "data": data,
    }


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    fake.on(PUBLISH, 204)
    return fake


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    settings = FulfillmentSettings(APP_PORT=8004, **TOKENS, work_ms=1)
    with TestClient(create_app(settings, sidecar.client()), headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def deliver(client: TestClient, body: dict[str, object]) -> str:
    response = client.post("/events/order-placed", json=body)
    assert response.status_code == 200
    return str(response.json()["status"])


def test_an_order_ships_once_and_every_delivery_announces_that_shipment(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    assert deliver(client, event("e-1")) == "SUCCESS"
    assert deliver(client, event("e-1")) == "SUCCESS"
    assert deliver(client, event("e-2")) == "SUCCESS"

    shipment = client.get("/shipments/o-1").json()
    writes = [call for call in sidecar.app_calls if call.path == "/v1.0/state/statestore"]
    assert [call.body[0]["key"] for call in writes] == ["shipment-o-1"]
    assert writes[0].body[0]["options"] == {"concurrency": "first-write"}
    # A redelivery may follow a crash between the write and the publish: it publishes
    # again, the same shipment, and the subscribers' dedupe makes it one.
    published = [call for call in sidecar.app_calls if call.path == PUBLISH]
    typed = {"metadata.cloudevent.type": "order-shipped"}
    assert [call.params for call in published] == [typed] * 3
    assert {tuple(call.body.items()) for call in published} == {
        (("order_id", "o-1"), ("customer_id", "c-1"), ("shipment_id", shipment["shipment_id"]))
    }


def test_poison_is_refused_for_redelivery_and_malformed_is_dropped(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    get_faults.of(client.app).update({"fulfillment.poison_rate": "100"})
    assert deliver(client, event("e-1")) == "RETRY"
    get_faults.of(client.app).update({"fulfillment.poison_rate": ""})
    assert deliver(client, event("e-2", {"order_id": "o-2"})) == "DROP"

    assert [call for call in sidecar.app_calls if call.path == PUBLISH] == []
    assert client.get("/shipments/o-1").status_code == 404
