"""payments' charges API."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orderflow_common.testing import FakeSidecar
from payments.main import create_app
from payments.settings import PaymentsSettings


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(PaymentsSettings(APP_PORT=8003), FakeSidecar().transport())
    with TestClient(app) as test_client:
        yield test_client


def test_charge_is_approved_and_listed(client: TestClient) -> None:
    request = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1450}

    created = client.post("/charges", json=request)

    assert created.status_code == 201
    charge = created.json()
    assert charge["order_id"] == "o-1"
    assert charge["amount_cents"] == 1450
    assert charge["status"] == "approved"
    assert client.get("/charges").json() == [charge]


@pytest.mark.parametrize(
    "request_body",
    [
        {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 0},
        {"order_id": "o-1", "customer_id": "c-1"},
        {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 10, "currency": "EUR"},
    ],
)
def test_invalid_charge_is_a_422_and_records_nothing(
    client: TestClient, request_body: dict[str, object]
) -> None:
    response = client.post("/charges", json=request_body)

    assert response.status_code == 422
    assert client.get("/charges").json() == []
