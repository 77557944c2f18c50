"""notifications' subscriber: one notification per CloudEvent id, explicit statuses."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from notifications.main import create_app
from notifications.settings import NotificationsSettings
from orderflow_common.testing import FakeSidecar


def cloud_event(
    event_id: str, event_type: str = "order-placed", **data: object
) -> dict[str, object]:
    payload = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1450, **data}
    return {
        "id": event_id,
        "type": event_type,
        "source": "storefront",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "pubsubname": "pubsub",
        "topic": "orders",
        "data": payload,
    }


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(NotificationsSettings(APP_PORT=8005), FakeSidecar().transport())
    with TestClient(app) as test_client:
        yield test_client


def deliver(client: TestClient, event: dict[str, object]) -> str:
    response = client.post(
        "/events/orders", json=event, headers={"content-type": "application/cloudevents+json"}
    )
    assert response.status_code == 200
    return str(response.json()["status"])


def test_order_placed_sends_one_notification(client: TestClient) -> None:
    assert deliver(client, cloud_event("e-1")) == "SUCCESS"

    assert client.get("/notifications").json() == [
        {
            "event_id": "e-1",
            "event_type": "order-placed",
            "order_id": "o-1",
            "message": "Thanks c-1, we received order o-1.",
        }
    ]


def test_redelivery_of_the_same_event_has_no_second_effect(client: TestClient) -> None:
    assert deliver(client, cloud_event("e-1")) == "SUCCESS"
    assert deliver(client, cloud_event("e-1")) == "SUCCESS"
    assert deliver(client, cloud_event("e-2", order_id="o-2")) == "SUCCESS"

    sent = client.get("/notifications").json()
    assert [(n["event_id"], n["order_id"]) for n in sent] == [("e-1", "o-1"), ("e-2", "o-2")]


def test_unknown_type_and_malformed_data_are_dropped(client: TestClient) -> None:
    assert deliver(client, cloud_event("e-1", event_type="order-teleported")) == "DROP"
    assert deliver(client, cloud_event("e-2", amount_cents=-5)) == "DROP"

    assert client.get("/notifications").json() == []


def test_a_body_that_is_not_a_cloud_event_is_a_422(client: TestClient) -> None:
    response = client.post("/events/orders", json={"order_id": "o-1"})

    assert response.status_code == 422
    assert client.get("/notifications").json() == []
