"""storefront's orders API, with the Dapr sidecar faked at the adapter's HTTP boundary."""

import json
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import grpc
import httpx
import pytest
from fastapi.testclient import TestClient

from orderflow_common.deps import get_dapr
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar, SidecarCall, rpc_error
from storefront import compensation
from storefront.deps import get_settings
from storefront.main import create_app
from storefront.settings import StorefrontSettings

RESERVE = "/v1.0/invoke/inventory/method/reservations"
CHARGE = "/v1.0/invoke/payments/method/charges"
TRANSACTION = "/v1.0/state/orderstore/transaction"
ORDER = {"customer_id": "c-1", "items": [{"sku": "moka-pot", "quantity": 2}]}


RESERVED = {"status": "reserved", "items": {"moka-pot": 2}, "amount_cents": 6400}
CHARGED = {"status": "charged", "charge_id": "ch-1", "amount_cents": 6400}


def release_path(order_id: str) -> str:
    return f"/v1.0/invoke/inventory/method/reservations/{order_id}"


def refund_path(order_id: str) -> str:
    return f"/v1.0/invoke/payments/method/charges/{order_id}"


def answer(fake: FakeSidecar, path: str, status: int, body: dict[str, object]) -> None:
    """inventory's or payments' answer for the order in the request, as they give it."""

    def respond(request: httpx.Request) -> httpx.Response:
        order_id = json.loads(request.content)["order_id"]
        return httpx.Response(status, json={"order_id": order_id, **body})

    fake.responders[path] = respond


UNDO_PREFIXES = (
    "/v1.0/invoke/inventory/method/reservations/",
    "/v1.0/invoke/payments/method/charges/",
)


@dataclass
class Sidecar(FakeSidecar):
    """inventory's and payments' undo calls answer 200 for any order id, as they do;
    ``undo_status`` makes them answer otherwise (an outage after Dapr's retries)."""

    undo_status: int = 200

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and request.url.path.startswith(UNDO_PREFIXES):
            self.calls.append(SidecarCall("DELETE", request.url.path, {}, None))
            return httpx.Response(self.undo_status, json={})
        return super()._handle(request)


@pytest.fixture
def sidecar() -> Sidecar:
    fake = Sidecar()
    answer(fake, RESERVE, 201, RESERVED)
    answer(fake, CHARGE, 201, CHARGED)
    return fake


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    settings = StorefrontSettings(APP_PORT=8001, **TOKENS)
    with TestClient(create_app(settings, sidecar.client()), headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def paths(sidecar: FakeSidecar) -> list[str]:
    return [call.path for call in sidecar.app_calls]


def test_order_is_reserved_charged_and_saved_with_its_event(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    response = client.post("/orders", json=ORDER)

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["amount_cents"], order["items"]) == (
        "paid",
        6400,
        {"moka-pot": 2},
    )
    assert [step["status"] for step in order["history"]] == ["placed", "paid"]
    assert paths(sidecar) == [RESERVE, CHARGE, TRANSACTION]
    reserve, charge, transaction = sidecar.app_calls
    assert reserve.body == {"order_id": order["order_id"], "items": ORDER["items"]}
    assert charge.body == {
        "order_id": order["order_id"],
        "customer_id": "c-1",
        "amount_cents": 6400,
        "payment_token": "tok_visa",
    }
    saved, projection = transaction.body["operations"]
    assert saved["request"]["key"] == f"order-{order['order_id']}"
    assert saved["request"]["metadata"] == {"type": "order-placed"}
    assert projection["request"]["metadata"]["outbox.projection"] == "true"
    assert projection["request"]["value"] == {
        "order_id": order["order_id"],
        "customer_id": "c-1",
        "amount_cents": 6400,
        "items": {"moka-pot": 2},
    }
    assert client.get(f"/orders/{order['order_id']}").json() == order


def test_out_of_stock_is_a_409_and_the_order_fails_with_the_reason(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    refusal = {"status": "out of stock", "items": {}, "amount_cents": 0, "skus": ["moka-pot"]}
    answer(sidecar, RESERVE, 200, refusal)

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 409
    detail = response.json()["detail"]
    assert (detail["reason"], detail["skus"]) == ("out of stock", ["moka-pot"])
    # Released all the same: an earlier attempt may have reserved before timing out.
    assert paths(sidecar) == [RESERVE, release_path(detail["order_id"]), "/v1.0/state/orderstore"]
    order = client.get(f"/orders/{detail['order_id']}").json()
    assert (order["status"], order["reason"]) == ("failed", "out of stock")


def test_declined_card_is_a_402_and_the_stock_is_released(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    answer(sidecar, CHARGE, 200, {"status": "declined", "charge_id": None, "amount_cents": 0})

    response = client.post("/orders", json={**ORDER, "payment_token": "tok_declined"})

    assert response.status_code == 402
    order_id = response.json()["detail"]["order_id"]
    assert response.json()["detail"]["reason"] == "payment declined"
    assert paths(sidecar) == [RESERVE, CHARGE, release_path(order_id), "/v1.0/state/orderstore"]
    assert client.get(f"/orders/{order_id}").json()["status"] == "failed"


@pytest.mark.parametrize("failure", ["500", "unreachable", "timeout", "voided", "garbled"])
def test_payments_failure_is_a_503_and_the_stock_and_the_charge_are_given_back(
    client: TestClient, sidecar: FakeSidecar, failure: str
) -> None:
    def fail(_: httpx.Request) -> httpx.Response:
        if failure == "unreachable":
            raise aiohttp.ClientConnectionError("connection refused")
        if failure == "timeout":
            raise TimeoutError  # the SDK's HTTP invocation client gave up waiting
        if failure == "voided":  # a charge answered after storefront gave it up
            void = {"order_id": "o", "status": "voided", "charge_id": None, "amount_cents": 0}
            return httpx.Response(200, json=void)
        if failure == "garbled":
            return httpx.Response(200, text="<html>")
        return httpx.Response(500, json={"errorCode": "ERR_DIRECT_INVOKE"})

    sidecar.responders[CHARGE] = fail

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail["reason"] == "payments unavailable"
    # The charge may have landed after the sidecar gave up on it: refunded (or voided).
    order_id = detail["order_id"]
    assert paths(sidecar) == [
        RESERVE,
        CHARGE,
        release_path(order_id),
        refund_path(order_id),
        "/v1.0/state/orderstore",
    ]
    assert [call.method for call in sidecar.app_calls[2:4]] == ["DELETE", "DELETE"]
    order = client.get(f"/orders/{detail['order_id']}").json()
    assert (order["status"], order["reason"]) == ("failed", "payments unavailable")


@pytest.mark.parametrize("failure", ["503", "timeout", "released"])
def test_inventory_failure_is_a_503_and_the_reservation_is_released(
    client: TestClient, sidecar: FakeSidecar, failure: str
) -> None:
    def fail(_: httpx.Request) -> httpx.Response:
        if failure == "timeout":
            raise TimeoutError  # the SDK's HTTP invocation client gave up waiting
        if failure == "released":
            body = {"order_id": "o", "status": "released", "items": {}, "amount_cents": 0}
            return httpx.Response(200, json=body)
        return httpx.Response(503, json={"detail": "fault injected: down"})

    sidecar.responders[RESERVE] = fail

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail["reason"] == "inventory unavailable"
    # The reservation may still land (a sidecar timeout does not stop inventory).
    assert paths(sidecar) == [
        RESERVE,
        release_path(detail["order_id"]),
        "/v1.0/state/orderstore",
    ]


def test_unknown_sku_is_a_422_naming_the_item_and_nothing_is_written(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    refusal = {"status": "unknown sku", "items": {}, "amount_cents": 0, "skus": ["teapot"]}
    answer(sidecar, RESERVE, 200, refusal)
    items = [{"sku": "grinder", "quantity": 1}, {"sku": "teapot", "quantity": 1}]

    response = client.post("/orders", json={"customer_id": "c", "items": items})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "unknown_sku",
                "loc": ["body", "items", 1, "sku"],
                "msg": "unknown SKU",
                "input": "teapot",
            }
        ]
    }
    assert paths(sidecar) == [RESERVE]
    assert sidecar.state == {}


def test_same_idempotency_key_gives_back_the_same_order(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    first = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    again = client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert paths(sidecar).count(CHARGE) == 1


def test_same_idempotency_key_with_another_request_is_a_422(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    other = {**ORDER, "customer_id": "c-2"}

    response = client.post("/orders", json=other, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "idempotency_key_reused",
                "loc": ["header", "Idempotency-Key"],
                "msg": "this Idempotency-Key was used with a different request",
                "input": "k-1",
            }
        ]
    }
    assert paths(sidecar).count(RESERVE) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "c-1", "items": []}, "items"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": 0}]}, "quantity"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": 101}]}, "quantity"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": "two"}]}, "quantity"),
        ({"customer_id": "c-1", "items": [{"sku": "grinder", "quantity": 1}], "vip": True}, "vip"),
        ({"items": [{"sku": "grinder", "quantity": 1}]}, "customer_id"),
        ({"customer_id": "c\u0001", "items": [{"sku": "grinder", "quantity": 1}]}, "customer_id"),
        ({"customer_id": "c-1", "items": [{"sku": "Grinder!", "quantity": 1}]}, "sku"),
        (
            {"customer_id": "c", "items": [{"sku": "grinder", "quantity": 1}], "payment_token": ""},
            "payment_token",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_nothing_happens(
    client: TestClient, sidecar: FakeSidecar, body: dict[str, object], field: str
) -> None:
    response = client.post("/orders", json=body)

    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
    assert sidecar.app_calls == []


def test_malformed_json_is_a_422(client: TestClient, sidecar: FakeSidecar) -> None:
    response = client.post(
        "/orders", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert sidecar.app_calls == []


def test_a_body_over_the_limit_is_a_413(client: TestClient, sidecar: FakeSidecar) -> None:
    huge = {"customer_id": "c" * 70_000, "items": [{"sku": "grinder", "quantity": 1}]}

    response = client.post("/orders", json=huge)

    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 65536 bytes"}
    assert sidecar.app_calls == []


def test_unknown_order_is_a_404(client: TestClient) -> None:
    response = client.get("/orders/no-such-order")

    assert (response.status_code, response.json()) == (404, {"detail": "order not found"})


@pytest.mark.parametrize("order_id", ["a%01b", "a%7Cb", "-a", "a" * 65])
def test_a_bad_order_id_is_a_422_before_any_sidecar_call(
    client: TestClient, sidecar: FakeSidecar, order_id: str
) -> None:
    response = client.get(f"/orders/{order_id}")

    assert (response.status_code, response.json()["detail"][0]["loc"]) == (
        422,
        ["path", "order_id"],
    )
    assert sidecar.app_calls == []


OWED = "compensations-owed"


def settle(client: TestClient) -> int:
    """One pass of the background settlement, now."""
    dapr, settings = get_dapr.of(client.app), get_settings.of(client.app)
    assert client.portal is not None  # inside the client's lifespan
    return int(client.portal.call(compensation.settle, dapr, settings))


def test_an_undo_that_fails_is_owed_and_settled_later(client: TestClient, sidecar: Sidecar) -> None:
    sidecar.responders[CHARGE] = lambda _: httpx.Response(
        500, json={"errorCode": "ERR_DIRECT_INVOKE"}
    )
    sidecar.undo_status = 500

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    order_id = response.json()["detail"]["order_id"]
    assert sidecar.value("orderstore", OWED) == {order_id: {"refund": True}}
    order = client.get(f"/orders/{order_id}").json()
    assert (order["status"], order["reason"]) == ("failed", "payments unavailable")

    assert settle(client) == 1  # still failing: still owed
    assert sidecar.value("orderstore", OWED) == {order_id: {"refund": True}}
    sidecar.undo_status = 200
    sidecar.calls.clear()

    assert settle(client) == 0
    assert sidecar.value("orderstore", OWED) == {}
    assert [(call.method, call.path) for call in sidecar.app_calls if call.method == "DELETE"] == [
        ("DELETE", release_path(order_id)),
        ("DELETE", refund_path(order_id)),
    ]


def test_an_owed_compensation_of_an_order_that_reads_paid_is_dropped_undone(
    client: TestClient, sidecar: Sidecar
) -> None:
    paid = client.post("/orders", json=ORDER).json()
    sidecar.put("orderstore", OWED, {paid["order_id"]: {"refund": True}}, insert_only=True)
    sidecar.calls.clear()

    assert settle(client) == 0

    assert sidecar.value("orderstore", OWED) == {}
    # Read what is owed, read the order (paid), forget the debt: no undo call.
    assert paths(sidecar) == [
        f"/v1.0/state/orderstore/{OWED}",
        f"/v1.0/state/orderstore/order-{paid['order_id']}",
        f"/v1.0/state/orderstore/{OWED}",
        "/v1.0/state/orderstore",
    ]


def test_a_paid_order_write_that_fails_unapplied_is_compensated_and_a_503(
    client: TestClient, sidecar: Sidecar
) -> None:
    sidecar.on(TRANSACTION, 500, {"errorCode": "ERR_PUBSUB_OUTBOX"})

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    assert response.json()["detail"] == "a Dapr building block is unavailable"
    reserve = sidecar.app_calls[0]
    order_id = reserve.body["order_id"]
    assert paths(sidecar) == [
        RESERVE,
        CHARGE,
        TRANSACTION,
        f"/v1.0/state/orderstore/order-{order_id}",
        release_path(order_id),
        refund_path(order_id),
    ]
    assert sidecar.value("orderstore", f"order-{order_id}") is None


def test_a_paid_order_write_that_fails_for_us_but_was_applied_is_a_201(
    client: TestClient, sidecar: Sidecar
) -> None:
    def applied_then_failed(request: httpx.Request) -> httpx.Response:
        saved = json.loads(request.content)["operations"][0]["request"]
        sidecar.put("orderstore", saved["key"], saved["value"])  # the write lands...
        raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "timed out")  # ...its answer does not

    sidecar.responders[TRANSACTION] = applied_then_failed

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 201
    order_id = response.json()["order_id"]
    assert response.json()["status"] == "paid"
    assert sidecar.value("orderstore", f"order-{order_id}")["status"] == "paid"
    assert [call.method for call in sidecar.app_calls].count("DELETE") == 0


def test_a_paid_order_write_whose_outcome_cannot_be_read_is_owed(
    client: TestClient, sidecar: Sidecar
) -> None:
    sidecar.on(TRANSACTION, 500, {"errorCode": "ERR_STATE_TRANSACTION"})

    def reserve(request: httpx.Request) -> httpx.Response:
        order_id = json.loads(request.content)["order_id"]
        # The order's own key cannot be read either: the state store is failing.
        sidecar.on(f"/v1.0/state/orderstore/order-{order_id}", 500, {"errorCode": "ERR_STATE_GET"})
        return httpx.Response(201, json={"order_id": order_id, **RESERVED})

    sidecar.responders[RESERVE] = reserve

    response = client.post("/orders", json=ORDER)

    assert response.status_code == 503
    order_id = sidecar.app_calls[0].body["order_id"]
    # Nothing undone yet: settled once the order reads other than paid.
    assert sidecar.value("orderstore", OWED) == {order_id: {"refund": True}}
    assert [call.method for call in sidecar.app_calls].count("DELETE") == 0
