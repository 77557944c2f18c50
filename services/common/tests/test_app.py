"""The shared app: an infrastructure fault is a 503 with a readable body, never a 500."""

from collections.abc import Iterator

import aiohttp
import grpc
import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from orderflow_common.app import UNAVAILABLE, Unavailable, create_service_app
from orderflow_common.deps import DaprDep
from orderflow_common.settings import ServiceSettings
from orderflow_common.sidecar import get_state
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar, rpc_error

router = APIRouter()


@router.get("/things/{key}", responses=UNAVAILABLE)
async def read_thing(key: str, dapr: DaprDep) -> dict[str, object]:
    state = await get_state(dapr, "statestore", key)
    return {"found": state is not None}


@pytest.fixture
def sidecar() -> FakeSidecar:
    return FakeSidecar()


@pytest.fixture
def client(sidecar: FakeSidecar) -> Iterator[TestClient]:
    settings = ServiceSettings(APP_PORT=8009, **TOKENS)
    app = create_service_app("things", settings, [router], sidecar.client())
    with TestClient(app, headers=SIDECAR_HEADERS) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
            "sidecar answered DEADLINE_EXCEEDED: Deadline Exceeded",
        ),
        (
            rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"),
            "sidecar answered UNAVAILABLE: failed to connect to all addresses",
        ),
        (aiohttp.ServerDisconnectedError(), "ServerDisconnectedError: Server disconnected"),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_a_sidecar_that_does_not_answer_is_a_503_with_its_cause(
    client: TestClient, sidecar: FakeSidecar, error: Exception, cause: str
) -> None:
    def respond(_: httpx.Request) -> httpx.Response:
        raise error

    sidecar.responders["/v1.0/state/statestore/a"] = respond

    response = client.get("/things/a")

    assert response.status_code == 503
    assert response.json() == {"detail": "the Dapr sidecar did not answer", "cause": cause}


def test_a_building_block_failure_is_a_503_with_the_sidecars_answer(
    client: TestClient, sidecar: FakeSidecar
) -> None:
    sidecar.on("/v1.0/state/statestore/a", 500, {"errorCode": "ERR_STATE_GET"})

    response = client.get("/things/a")

    assert response.status_code == 503
    assert response.json() == {
        "detail": "a Dapr building block is unavailable",
        "cause": 'sidecar answered INTERNAL: GetState: {"errorCode":"ERR_STATE_GET"}',
    }


def test_the_openapi_documents_the_503_body(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/things/{key}"]["get"]

    assert operation["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Unavailable"
    }
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["Unavailable"]["required"] == list(Unavailable.model_fields)


@pytest.mark.parametrize(
    "headers",
    [{}, {"dapr-api-token": "wrong"}, {"dapr-api-token": ""}],
    ids=["none", "wrong", "empty"],
)
def test_a_route_the_sidecar_calls_refuses_a_call_without_the_app_token(
    sidecar: FakeSidecar, headers: dict[str, str]
) -> None:
    settings = ServiceSettings(APP_PORT=8009, FAULTS_ENABLED=True, **TOKENS)
    app = create_service_app("things", settings, [router], sidecar.client())
    with TestClient(app, headers=headers) as client:
        refused = [
            client.get("/things/t-1"),
            client.get("/faults"),
        ]
        opened = [client.get("/healthz"), client.get("/metrics"), client.get("/openapi.json")]

    assert [(r.status_code, r.json()) for r in refused] == [
        (401, {"detail": "a valid dapr-api-token header is needed"})
    ] * 2
    assert [r.status_code for r in opened] == [200, 200, 200]
    assert sidecar.app_calls == []


def test_an_open_router_answers_without_the_app_token(sidecar: FakeSidecar) -> None:
    settings = ServiceSettings(APP_PORT=8009, **TOKENS)
    app = create_service_app("things", settings, [], sidecar.client(), open_routers=[router])
    with TestClient(app) as client:
        response = client.get("/things/t-1")

    assert (response.status_code, response.json()) == (200, {"found": False})
    # The fake sidecar answers 401 to a call without the Dapr API token, as daprd does.
    assert [call.path for call in sidecar.app_calls] == ["/v1.0/state/statestore/t-1"]


def test_fault_injection_is_off_unless_the_setting_turns_it_on(
    sidecar: FakeSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAULTS_ENABLED", raising=False)
    settings = ServiceSettings(APP_PORT=8009, **TOKENS)
    app = create_service_app("things", settings, [router], sidecar.client())
    with TestClient(app, headers=SIDECAR_HEADERS) as client:
        answer = client.get("/faults")
        paths = client.get("/openapi.json").json()["paths"]

    assert settings.faults_enabled is False
    assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    assert "/faults" not in paths
    # No read of the flags, no subscription to them: no call to the sidecar at all.
    assert [call.path for call in sidecar.calls] == []
