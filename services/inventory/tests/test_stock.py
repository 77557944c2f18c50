"""inventory's reservations: never oversell, answer a retried reservation again, release,
and answer every business refusal with a 2xx (Dapr's breaker counts the rest)."""

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from inventory.main import create_app
from inventory.settings import InventorySettings
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar

KEY_PATH = "/v1.0/state/statestore/reservation-o-1"
RELEASED = {"status": "released", "items": {}, "amount_cents": 0, "skus": []}


def test_a_bad_order_id_is_a_422_before_any_sidecar_call(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    response = client.delete("/reservations/a%01b")

    assert (response.status_code, response.json()["detail"][0]["loc"]) == (
        422,
        ["path", "order_id"],
    )
    assert sidecar.app_calls == []


@pytest.fixture
def sidecar() -> FakeSidecar:
    return FakeSidecar()


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    settings = InventorySettings(APP_PORT=8002, **TOKENS, initial_stock=5)
    with TestClient(create_app(settings, sidecar.client()), headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def reserve(client: TestClient, order_id: str, **items: int) -> tuple[int, dict[str, object]]:
    body = {"order_id": order_id, "items": [{"sku": s, "quantity": q} for s, q in items.items()]}
    response = client.post("/reservations", json=body)
    return response.status_code, response.json()


def test_a_reservation_takes_stock_and_prices_the_order(client: TestClient) -> None:
    status, reservation = reserve(client, "o-1", **{"grinder": 2, "moka-pot": 1})

    assert status == 201
    assert reservation == {
        "order_id": "o-1",
        "status": "reserved",
        "items": {"grinder": 2, "moka-pot": 1},
        "amount_cents": 2 * 8900 + 3200,
        "skus": [],
    }
    assert client.get("/stock").json() == {"espresso-beans": 5, "grinder": 3, "moka-pot": 4}


def test_not_enough_stock_is_a_200_refusal_naming_the_skus_and_takes_nothing(
    client: TestClient,
) -> None:
    status, body = reserve(client, "o-1", **{"grinder": 6, "moka-pot": 1})

    assert status == 200
    assert body == {
        "order_id": "o-1",
        "status": "out of stock",
        "items": {},
        "amount_cents": 0,
        "skus": ["grinder"],
    }
    assert client.get("/stock").json() == {"espresso-beans": 5, "grinder": 5, "moka-pot": 5}


def test_an_unknown_sku_is_a_200_refusal_and_writes_nothing(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    status, body = reserve(client, "o-1", teapot=1, grinder=1, kettle=2)

    assert (status, body["status"], body["skus"]) == (200, "unknown sku", ["kettle", "teapot"])
    assert sidecar.state == {}


def test_a_retried_reservation_is_answered_again_not_taken_twice(client: TestClient) -> None:
    first = reserve(client, "o-1", grinder=2)
    again = reserve(client, "o-1", grinder=2)

    assert (first[0], again[0]) == (201, 200)
    assert again[1] == first[1]
    assert client.get("/stock").json()["grinder"] == 3


def test_a_lost_race_reads_again_and_still_never_oversells(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    reserve(client, "o-0", grinder=1)
    sidecar.races = 3

    status, _ = reserve(client, "o-1", grinder=4)

    assert status == 201
    assert client.get("/stock").json()["grinder"] == 0
    assert reserve(client, "o-2", grinder=1)[0] == 200


def test_release_gives_the_stock_back_once(client: TestClient) -> None:
    reserve(client, "o-1", grinder=2)

    first = client.delete("/reservations/o-1")
    again = client.delete("/reservations/o-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["status"], again.json()) == ("released", first.json())
    assert client.get("/reservations/o-1").json() == first.json()
    assert client.get("/stock").json()["grinder"] == 5
    assert client.get("/reservations/o-2").status_code == 404


def test_a_release_before_the_reservation_lands_makes_the_late_reservation_take_nothing(
    client: TestClient,
) -> None:
    released = client.delete("/reservations/o-1")
    status, late = reserve(client, "o-1", grinder=2)

    assert (released.status_code, released.json()["items"]) == (200, {})
    assert (status, late["status"]) == (200, "released")
    assert client.get("/stock").json()["grinder"] == 5


def test_a_reservation_that_loses_to_a_release_gives_its_stock_back(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    """The attempt read no reservation, took stock, then found the release recorded."""

    def release_lands_first(_: httpx.Request) -> httpx.Response:
        del sidecar.responders[KEY_PATH]  # the attempt's read: nothing recorded yet
        release = {**RELEASED, "order_id": "o-1"}
        sidecar.put("statestore", "reservation-o-1", release, insert_only=True)
        return httpx.Response(204)

    sidecar.responders[KEY_PATH] = release_lands_first

    status, late = reserve(client, "o-1", grinder=2)

    assert (status, late["status"]) == (200, "released")
    assert client.get("/stock").json()["grinder"] == 5


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"order_id": "o-1", "items": [{"sku": "Tea Pot", "quantity": 1}]}, 422),
        ({"order_id": "o\u0001", "items": [{"sku": "grinder", "quantity": 1}]}, 422),
        ({"order_id": "o-1", "items": []}, 422),
        ({"order_id": "o-1", "items": [{"sku": "grinder", "quantity": 0}]}, 422),
        ({"items": [{"sku": "grinder", "quantity": 1}]}, 422),
    ],
)
def test_bad_reservations_are_refused_and_nothing_is_written(
    client: TestClient, sidecar: FakeSidecar, body: dict[str, object], status: int
) -> None:
    assert client.post("/reservations", json=body).status_code == status
    assert sidecar.state == {}


def test_stock_can_be_set_for_a_lab(client: TestClient) -> None:
    assert client.put("/stock/grinder", json={"quantity": 1}).json()["grinder"] == 1
    assert client.put("/stock/teapot", json={"quantity": 1}).status_code == 404
    assert client.put("/stock/a%01b", json={"quantity": 1}).status_code == 422
    assert client.put("/stock/grinder", json={"quantity": -1}).status_code == 422
