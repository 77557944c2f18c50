"""payments: one charge per order, declines are 200s that say so, refunds and voids are
once per order, injected failures count attempts."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from orderflow_common.faults import get_faults
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar
from payments.main import create_app
from payments.settings import PaymentsSettings

REQUEST = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "amount_cents": 1450,
    "payment_token": "tok_visa",
}


@pytest.fixture
def sidecar() -> FakeSidecar:
    return FakeSidecar()


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    app = create_app(PaymentsSettings(APP_PORT=8003, **TOKENS), sidecar.client())
    with TestClient(app, headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def test_a_charge_is_taken_once_however_often_it_is_asked(client: TestClient) -> None:
    first = client.post("/charges", json=REQUEST)
    again = client.post("/charges", json=REQUEST)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert client.get("/charges/o-1").json() == first.json()
    assert client.get("/attempts/o-1").json() == {"attempts": 2}


def test_a_declined_card_is_a_200_that_says_so_and_charges_nothing(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    response = client.post("/charges", json={**REQUEST, "payment_token": "tok_declined"})

    assert (response.status_code, response.json()) == (
        200,
        {"order_id": "o-1", "status": "declined", "charge_id": None, "amount_cents": 0},
    )
    assert sidecar.state == {}
    assert client.get("/charges/o-1").status_code == 404


def test_a_refund_is_made_once_and_a_late_attempt_charges_nothing(client: TestClient) -> None:
    charged = client.post("/charges", json=REQUEST).json()

    refunded = client.delete("/charges/o-1")
    again = client.delete("/charges/o-1")
    late = client.post("/charges", json=REQUEST)

    assert (refunded.status_code, refunded.json()) == (200, {**charged, "status": "refunded"})
    assert again.json() == refunded.json()
    assert (late.status_code, late.json()) == (200, refunded.json())
    assert client.get("/charges/o-1").json()["status"] == "refunded"


def test_a_refund_before_the_charge_lands_voids_it(client: TestClient) -> None:
    voided = client.delete("/charges/o-1")
    late = client.post("/charges", json=REQUEST)

    expected = {"order_id": "o-1", "status": "voided", "charge_id": None, "amount_cents": 0}
    assert (voided.status_code, voided.json()) == (200, expected)
    assert (late.status_code, late.json()) == (200, expected)


@pytest.mark.parametrize("path", ["/charges/a%01b", "/attempts/a%01b", "/charges/-x"])
def test_a_bad_order_id_is_a_422(client: TestClient, sidecar: FakeSidecar, path: str) -> None:
    response = client.get(path)

    assert (response.status_code, response.json()["detail"][0]["loc"]) == (
        422,
        ["path", "order_id"],
    )
    assert sidecar.app_calls == []


def test_fail_attempts_fails_exactly_the_first_attempts(client: TestClient) -> None:
    get_faults.of(client.app).update({"payments.fail_attempts": "2"})

    codes = [client.post("/charges", json=REQUEST).status_code for _ in range(3)]

    assert codes == [500, 500, 201]
    assert client.get("/attempts/o-1").json() == {"attempts": 3}


@pytest.mark.parametrize(
    "body",
    [
        {**REQUEST, "amount_cents": 0},
        {key: value for key, value in REQUEST.items() if key != "payment_token"},
        {**REQUEST, "currency": "EUR"},
        {**REQUEST, "payment_token": "4111 1111 1111 1111"},
    ],
)
def test_an_invalid_charge_is_a_422_and_records_nothing(
    client: TestClient, sidecar: FakeSidecar, body: dict[str, object]
) -> None:
    assert client.post("/charges", json=body).status_code == 422
    assert sidecar.state == {}
