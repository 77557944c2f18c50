"""storefront's orders API, with the Dapr sidecar faked at the adapter's HTTP boundary."""

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from orderflow_common.testing import FakeSidecar
from storefront.main import create_app
from storefront.settings import StorefrontSettings

INVOKE_CHARGES = "/v1.0/invoke/payments/method/charges"
PUBLISH_ORDERS = "/v1.0/publish/pubsub/orders"
ORDER = {"customer_id": "c-1", "items": [{"sku": "moka-pot", "quantity": 2}]}


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    fake.on(INVOKE_CHARGES, 201, {"charge_id": "ch-1", "status": "approved"})
    fake.on(PUBLISH_ORDERS, 204)
    return fake


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    settings = StorefrontSettings(APP_PORT=8001)
    with TestClient(create_app(settings, sidecar.transport())) as test_client:
        yield test_client


def test_order_is_charged_then_announced(client: TestClient, sidecar: FakeSidecar) -> None:
    response = client.post("/orders", json=ORDER)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "placed"
    assert body["amount_cents"] == 2 * 3200
    assert body["charge_id"] == "ch-1"
    assert [call.path for call in sidecar.calls] == [INVOKE_CHARGES, PUBLISH_ORDERS]
    charge, publish = sidecar.calls
    expected = {"order_id": body["order_id"], "customer_id": "c-1", "amount_cents": 6400}
    assert charge.body == expected
    assert publish.body == expected
    assert publish.params == {"metadata.cloudevent.type": "order-placed"}


def test_failed_charge_is_a_502_and_nothing_is_announced(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    sidecar.on(INVOKE_CHARGES, 500, {"error": "boom"})

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 502
    assert response.json() == {"detail": "payments could not charge the order"}
    assert [call.path for call in sidecar.calls] == [INVOKE_CHARGES]


def test_unreachable_sidecar_is_a_503(client: TestClient, sidecar: FakeSidecar) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sidecar.responders[INVOKE_CHARGES] = refuse

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    assert response.json() == {"detail": "payments unreachable"}
    assert [call.path for call in sidecar.calls] == [INVOKE_CHARGES]


def test_failed_publish_is_a_503_with_its_cause(client: TestClient, sidecar: FakeSidecar) -> None:
    sidecar.on(PUBLISH_ORDERS, 500, {"errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE"})

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    assert response.json()["detail"] == "a Dapr building block is unavailable"
    assert "ERR_PUBSUB_PUBLISH_MESSAGE" in response.json()["cause"]


def test_unknown_sku_is_named_and_nothing_is_called(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    order = {"customer_id": "c-1", "items": [{"sku": "teapot", "quantity": 1}]}

    response = client.post("/orders", json=order)

    assert response.status_code == 422
    assert response.json() == {"detail": {"unknown_skus": ["teapot"]}}
    assert sidecar.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "c-1", "items": []}, "items"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": 0}]}, "quantity"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": "two"}]}, "quantity"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": 1}], "vip": True}, "vip"),
        ({"items": [{"sku": "grinder", "quantity": 1}]}, "customer_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, sidecar: FakeSidecar, body: dict[str, object], field: str
) -> None:
    response = client.post("/orders", json=body)

    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
    assert sidecar.calls == []


def test_malformed_json_is_a_422(client: TestClient, sidecar: FakeSidecar) -> None:
    response = client.post(
        "/orders", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert sidecar.calls == []
