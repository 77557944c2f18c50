"""The token-guarded fault-flag routes."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar
from orderflow_devtools import runfile
from storefront.main import create_app
from storefront.settings import StorefrontSettings

BINDING = "/v1.0/bindings/faultflags"
TOKEN = {"X-Fault-Token": "s3cret"}


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    fake.on(BINDING, 204)
    return fake


def client_for(sidecar: FakeSidecar, token: str | None, *, enabled: bool = True) -> TestClient:
    secret = SecretStr(token) if token is not None else None
    settings = StorefrontSettings(
        APP_PORT=8001,
        FAULTS_ENABLED=enabled,
        **TOKENS,
        fault_token=secret,
        fault_services=runfile.app_ids(),
    )
    return TestClient(create_app(settings, sidecar.client()), headers=SIDECAR_HEADERS)


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    with client_for(sidecar, "s3cret") as test_client:
        yield test_client


def test_setting_flags_writes_each_one_and_deletes_the_defaults(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    response = client.put("/faults/payments", json={"error_rate": 30, "down": True}, headers=TOKEN)

    assert response.status_code == 200
    writes = {
        (call.body["operation"], call.body["metadata"]["key"], call.body["data"])
        for call in sidecar.app_calls
    }
    assert writes == {
        ("create", "payments.error_rate", 30),
        ("create", "payments.down", True),
        ("delete", "payments.fail_attempts", None),
        ("delete", "payments.latency_ms", None),
        ("delete", "payments.poison_rate", None),
        ("delete", "payments.cpu_hog_ms", None),
    }


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 403, "a valid X-Fault-Token header is needed"),
        ({"X-Fault-Token": "wrong"}, 403, "a valid X-Fault-Token header is needed"),
    ],
)
def test_a_missing_or_wrong_token_is_refused(
    client: TestClient, sidecar: FakeSidecar, headers: dict[str, str], status: int, detail: str
) -> None:
    response = client.put("/faults/payments", json={"error_rate": 30}, headers=headers)

    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert sidecar.app_calls == []


def test_without_a_configured_token_the_routes_do_not_exist(sidecar: FakeSidecar) -> None:
    with client_for(sidecar, None) as client:
        response = client.put("/faults/payments", json={"error_rate": 30}, headers=TOKEN)
        paths = client.get("/openapi.json").json()["paths"]

    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    assert [path for path in paths if path.startswith("/faults/")] == []
    assert sidecar.app_calls == []


def test_without_fault_injection_the_routes_do_not_exist_even_with_a_token(
    sidecar: FakeSidecar,
) -> None:
    with client_for(sidecar, "s3cret", enabled=False) as client:
        response = client.put("/faults/payments", json={"error_rate": 30}, headers=TOKEN)
        paths = client.get("/openapi.json").json()["paths"]

    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})
    assert [path for path in paths if path.startswith("/faults")] == []
    assert sidecar.app_calls == []


@pytest.mark.parametrize(
    ("service", "body", "status"),
    [
        ("billing", {"error_rate": 30}, 404),
        ("payments", {"error_rate": 101}, 422),
        ("payments", {"latency_ms": -1}, 422),
        ("payments", {"explode": True}, 422),
    ],
)
def test_bad_flags_are_refused_and_nothing_is_written(
    client: TestClient, sidecar: FakeSidecar, service: str, body: dict[str, object], status: int
) -> None:
    response = client.put(f"/faults/{service}", json=body, headers=TOKEN)

    assert response.status_code == status
    assert sidecar.app_calls == []


def test_an_unknown_service_without_the_token_is_refused_before_it_is_looked_up(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    response = client.put("/faults/billing", json={"error_rate": 30})

    assert (response.status_code, response.json()) == (
        403,
        {"detail": "a valid X-Fault-Token header is needed"},
    )
    assert sidecar.app_calls == []
