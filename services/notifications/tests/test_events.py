"""notifications: one notification per order and event type, explicit statuses, dead
letters recorded with their attempts."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from notifications.main import create_app
from notifications.settings import NotificationsSettings
from orderflow_common.faults import get_faults
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar

PUBLISH = "/v1.0/publish/pubsub/customer-notified"


def cloud_event(
    event_id: str, event_type: str = "order-placed", **data: object
) -> dict[str, object]:
    payload: dict[str, object] = {"order_id": "o-1", "customer_id": "c-1"}
    if event_type == "order-placed":
        payload |= {"amount_cents": 1450, "items": {"grinder": 1}}
    if event_type == "order-shipped":
        payload |= {"shipment_id": "s-1"}
    return {
        "id": event_id,
        "type": event_type,
        "source": "storefront",
        "specversion": "1.0",
        "data": payload | data,
    }


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    fake.on(PUBLISH, 204)
    return fake


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    app = create_app(NotificationsSettings(APP_PORT=8005, **TOKENS), sidecar.client())
    with TestClient(app, headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def deliver(client: TestClient, event: dict[str, object], route: str = "order-placed") -> str:
    response = client.post(
        f"/events/{route}", json=event, headers={"content-type": "application/cloudevents+json"}
    )
    assert response.status_code == 200
    return str(response.json()["status"])


def test_each_order_event_is_notified_once(client: TestClient, sidecar: FakeSidecar) -> None:
    assert deliver(client, cloud_event("e-1")) == "SUCCESS"
    assert deliver(client, cloud_event("e-1")) == "SUCCESS"
    assert deliver(client, cloud_event("e-9")) == "SUCCESS"
    assert deliver(client, cloud_event("e-2", "order-shipped"), "order-shipped") == "SUCCESS"

    sent = client.get("/notifications/o-1").json()
    assert [(n["event_id"], n["event_type"]) for n in sent] == [
        ("e-1", "order-placed"),
        ("e-2", "order-shipped"),
    ]
    assert sent[0]["message"] == "Thanks c-1, we received order o-1."
    published = [call for call in sidecar.app_calls if call.path == PUBLISH]
    assert [(p.body, p.params) for p in published] == [
        ({"order_id": "o-1"}, {"metadata.cloudevent.type": "customer-notified"})
    ]


def test_poison_is_retried_then_its_dead_letter_records_the_attempts(client: TestClient) -> None:
    get_faults.of(client.app).update({"notifications.poison_rate": "100"})
    statuses = [deliver(client, cloud_event("e-1")) for _ in range(4)]
    dead = client.post("/events/dead-letter", json=cloud_event("e-1"))

    assert statuses == ["RETRY"] * 4
    assert dead.json() == {"status": "SUCCESS"}
    assert client.get("/dead-letters/o-1").json() == [
        {"event_id": "e-1", "event_type": "order-placed", "order_id": "o-1", "attempts": 4}
    ]
    assert client.get("/notifications/o-1").json() == []


def test_malformed_data_is_dropped_and_a_non_event_is_a_422(client: TestClient) -> None:
    assert deliver(client, cloud_event("e-1", amount_cents=-5)) == "DROP"
    assert client.post("/events/order-placed", json={"order_id": "o-1"}).status_code == 422
    assert client.get("/notifications/o-1").json() == []


def test_an_envelope_type_that_is_not_the_topics_is_notified_as_the_topics(
    client: TestClient,
) -> None:
    event = {**cloud_event("e-1"), "type": "com.example.other"}

    assert deliver(client, event) == "SUCCESS"
    assert [n["event_type"] for n in client.get("/notifications/o-1").json()] == ["order-placed"]


def test_an_order_id_unsafe_in_a_key_is_dropped_or_recorded_as_unknown(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    assert deliver(client, cloud_event("e-1", order_id="a\u0001b")) == "DROP"
    dead = {**cloud_event("e-2", order_id="a\u0001b"), "type": "com.example.other"}
    assert deliver(client, dead, "dead-letter") == "SUCCESS"

    assert client.get("/dead-letters/unknown").status_code == 200
    assert sidecar.value("statestore", "dead-letter-unknown-other") == {
        "event_id": "e-2",
        "event_type": "other",
        "order_id": "unknown",
        "attempts": 0,
    }
    assert client.get("/notifications/a%01b").status_code == 422
