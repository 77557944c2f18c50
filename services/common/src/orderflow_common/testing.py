"""A fake Dapr sidecar for unit tests, and a double of the SDK's DaprClient in front of
it. The double turns each SDK call into the sidecar HTTP API call that does the same
(https://docs.dapr.io/reference/api/), so that a test reads and configures the sidecar by
the paths the Dapr docs name; the fake records every such call, keeps state like the
Redis state store does (versions as ETags, first-write keys), and answers other paths with
what the test configured. The double answers as the SDK does: its response types, and
its errors for a failed call (orderflow_common.sidecar.SIDECAR_ERRORS)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from dapr.clients.exceptions import DaprHttpError, DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation
from dapr.clients.grpc._response import (
    BindingResponse,
    BulkStateItem,
    BulkStatesResponse,
    ConfigurationResponse,
    DaprResponse,
    InvokeMethodResponse,
    StateResponse,
)
from dapr.clients.grpc._state import StateOptions
from dapr.conf import settings as sdk_settings
from dapr.proto import api_v1, common_v1
from dapr.serializers import DefaultJSONSerializer

from orderflow_common.auth import TOKEN_HEADER
from orderflow_common.sidecar import DaprClient, trace_headers

Responder = Callable[[httpx.Request], httpx.Response]
STARTUP_PATHS = ("/v1.0/configuration/",)
# The tokens a service under test is given, as the environment gives them (settings.py).
# Any-typed for the settings' keyword arguments, which the type checker sees one by one.
TOKENS: dict[str, Any] = {
    "DAPR_API_TOKEN": "test-dapr-api-token",
    "APP_API_TOKEN": "test-app-api-token",
}
# What the app's own sidecar sends with every call to the app (auth.py).
SIDECAR_HEADERS = {TOKEN_HEADER: str(TOKENS["APP_API_TOKEN"])}
_STATE = re.compile(r"^/v1\.0/state/(?P<store>[^/]+)(?:/(?P<key>[^/]+))?$")


@dataclass(frozen=True)
class SidecarCall:
    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class _Entry:
    value: Any
    version: int
    first_write: bool


@dataclass
class FakeSidecar:
    """Answers by path; a path without a responder gets a 404 like an unknown route."""

    responders: dict[str, Responder] = field(default_factory=dict)
    calls: list[SidecarCall] = field(default_factory=list)
    state: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    # How many of the next ETag-guarded writes lose a race to another writer.
    races: int = 0

    def __post_init__(self) -> None:
        # What every app asks at start: is the sidecar up, and what are my fault flags.
        self.on("/v1.0/configuration/configstore", 204)
        self.on("/v1.0/configuration/configstore/subscribe", 200, {"id": "subscription-1"})

    @property
    def app_calls(self) -> list[SidecarCall]:
        """The calls the app made for its own work, without the start-up ones above."""
        return [call for call in self.calls if not call.path.startswith(STARTUP_PATHS)]

    def on(self, path: str, status: int, body: Any = None) -> None:
        def respond(_: httpx.Request) -> httpx.Response:
            return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

        self.responders[path] = respond

    def put(self, store: str, key: str, value: Any, *, insert_only: bool = False) -> None:
        """Seed state as if the app had written it (``insert_only``: as the adapter's
        insert-only write does, so that later insert-only writes are refused)."""
        self.state[(store, key)] = _Entry(value, 1, first_write=insert_only)

    def value(self, store: str, key: str) -> Any:
        entry = self.state.get((store, key))
        return None if entry is None else entry.value

    def client(self) -> "FakeDaprClient":
        return FakeDaprClient(self)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        # As daprd does with DAPR_API_TOKEN set (health checks aside).
        if request.headers.get(TOKEN_HEADER) != TOKENS["DAPR_API_TOKEN"]:
            return httpx.Response(401, text="invalid api token")
        body = json.loads(request.content) if request.content else None
        self.calls.append(
            SidecarCall(request.method, request.url.path, dict(request.url.params), body)
        )
        responder = self.responders.get(request.url.path)
        if responder is not None:
            return responder(request)
        match = _STATE.match(request.url.path)
        if match is not None:
            return self._state(request.method, match["store"], match["key"], body)
        return httpx.Response(404)

    def _state(self, method: str, store: str, key: str | None, body: Any) -> httpx.Response:
        if method == "GET" and key is not None:
            entry = self.state.get((store, key))
            if entry is None:
                return httpx.Response(204)
            return httpx.Response(200, json=entry.value, headers={"etag": str(entry.version)})
        if key == "bulk":
            return httpx.Response(
                200,
                json=[
                    {
                        "key": k,
                        "data": self.state[(store, k)].value,
                        "etag": str(self.state[(store, k)].version),
                    }
                    if (store, k) in self.state
                    else {"key": k}
                    for k in body["keys"]
                ],
            )
        if key == "transaction":
            for operation in body["operations"]:
                request = operation["request"]
                if request.get("metadata", {}).get("outbox.projection") != "true":
                    self._write(store, request)
            return httpx.Response(204)
        for item in body:
            if not self._write(store, item):
                return httpx.Response(409, json={"errorCode": "ERR_STATE_SAVE"})
        return httpx.Response(204)

    def _write(self, store: str, item: dict[str, Any]) -> bool:
        """Redis' rules: a given ETag must match; a key written first-write with no
        ETag (or "0") refuses later writes that bring none."""
        current = self.state.get((store, item["key"]))
        etag = item.get("etag")
        first_write = item.get("options", {}).get("concurrency") == "first-write"
        if current is not None:
            if etag not in (None, "", "0") and self.races > 0:
                self.races -= 1
                current.version += 1
            if etag not in (None, "", "0") and etag != str(current.version):
                return False
            if etag in (None, "", "0") and current.first_write:
                return False
        version = current.version + 1 if current else 1
        self.state[(store, item["key"])] = _Entry(
            item["value"], version, first_write or (current is not None and current.first_write)
        )
        return True


class FakeDaprClient(DaprClient):
    """What the services call, in front of a :class:`FakeSidecar` (no network, no
    health check). It sends the token the SDK would send: its settings' DAPR_API_TOKEN,
    which orderflow_common.sidecar.configure_sdk sets from the service's settings."""

    def __init__(self, sidecar: FakeSidecar) -> None:  # no super(): it would dial a sidecar
        self._sidecar = sidecar
        self._stub = _FakeStub(self)  # type: ignore[assignment]  # the one call used

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str | list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        request = httpx.Request(
            method,
            f"http://sidecar{path}",
            params=params,
            json=body,
            headers={TOKEN_HEADER: str(sdk_settings.DAPR_API_TOKEN), **(headers or {})},
        )
        return self._sidecar._handle(request)

    async def invoke_method(
        self,
        app_id: str,
        method_name: str,
        data: Any = b"",
        content_type: str | None = None,
        metadata: Any = None,
        http_verb: str | None = None,
        http_querystring: Any = None,
        timeout: int | None = None,
    ) -> InvokeMethodResponse:
        # The SDK's HTTP invocation client adds what connect() gives its headers_callback.
        body = json.loads(data) if data else None
        response = self.send(
            http_verb or "GET",
            f"/v1.0/invoke/{app_id}/method/{method_name}",
            body,
            headers=trace_headers(),
        )
        if not response.is_success:
            raise DaprHttpError(DefaultJSONSerializer(), response.content, response.status_code)
        return InvokeMethodResponse(response.content, status_code=response.status_code)

    async def get_state(
        self, store_name: str, key: str, *args: Any, **kwargs: Any
    ) -> StateResponse:
        response = _ok(self.send("GET", f"/v1.0/state/{store_name}/{key}"), "GetState")
        return StateResponse(response.content, response.headers.get("etag", ""))

    async def get_bulk_state(
        self, store_name: str, keys: Sequence[str], *args: Any, **kwargs: Any
    ) -> BulkStatesResponse:
        sent = {"keys": list(keys)}
        response = _ok(self.send("POST", f"/v1.0/state/{store_name}/bulk", sent), "GetBulkState")
        return BulkStatesResponse(
            [
                BulkStateItem(
                    item["key"],
                    json.dumps(item["data"]).encode() if "data" in item else b"",
                    item.get("etag", ""),
                )
                for item in response.json()
            ]
        )

    async def save_state(
        self,
        store_name: str,
        key: str,
        value: bytes | str,
        etag: str | None = None,
        options: StateOptions | None = None,
        state_metadata: dict[str, str] | None = None,
        metadata: Any = None,
    ) -> DaprResponse:
        item: dict[str, Any] = {"key": key, "value": json.loads(value)}
        if state_metadata:
            item["metadata"] = state_metadata
        if etag is not None:
            item["etag"] = etag
        if options is not None and options.concurrency is not None:
            item["options"] = {"concurrency": options.concurrency.name.replace("_", "-")}
        response = self.send("POST", f"/v1.0/state/{store_name}", [item])
        if response.status_code == 409:
            # As the SDK raises it: the status only on the gRPC error it comes from.
            cause = rpc_error(grpc.StatusCode.ABORTED, response.text)
            raise DaprInternalError(cause.details()) from cause
        if not response.is_success:
            cause = rpc_error(grpc.StatusCode.INTERNAL, response.text)
            raise DaprInternalError(cause.details()) from cause
        return DaprResponse()

    async def execute_state_transaction(
        self,
        store_name: str,
        operations: Sequence[TransactionalStateOperation],
        *args: Any,
        **kwargs: Any,
    ) -> DaprResponse:
        sent = {
            "operations": [
                {
                    "operation": operation.operation_type.name,
                    "request": {
                        "key": operation.key,
                        "value": json.loads(operation.data or "null"),
                        "metadata": operation.metadata,
                    },
                }
                for operation in operations
            ]
        }
        path = f"/v1.0/state/{store_name}/transaction"
        _ok(self.send("POST", path, sent), "ExecuteStateTransaction")
        return DaprResponse()

    async def publish_event(
        self,
        pubsub_name: str,
        topic_name: str,
        data: bytes | str,
        publish_metadata: dict[str, str] | None = None,
        metadata: Any = None,
        data_content_type: str | None = None,
    ) -> DaprResponse:
        params = {f"metadata.{name}": value for name, value in (publish_metadata or {}).items()}
        path = f"/v1.0/publish/{pubsub_name}/{topic_name}"
        _ok(self.send("POST", path, json.loads(data), params), "PublishEvent")
        return DaprResponse()

    async def get_configuration(
        self, store_name: str, keys: list[str], *args: Any, **kwargs: Any
    ) -> ConfigurationResponse:
        response = self.send("GET", f"/v1.0/configuration/{store_name}", params={"key": keys})
        found = _ok(response, "GetConfiguration").json() if response.content else {}
        return ConfigurationResponse(
            {
                key: common_v1.ConfigurationItem(value=str(item.get("value", "")))
                for key, item in found.items()
            }
        )

    async def invoke_binding(
        self,
        binding_name: str,
        operation: str,
        data: bytes | str = "",
        binding_metadata: dict[str, str] | None = None,
        metadata: Any = None,
    ) -> BindingResponse:
        sent = {
            "operation": operation,
            "data": json.loads(data) if data else None,
            "metadata": binding_metadata or {},
        }
        _ok(self.send("POST", f"/v1.0/bindings/{binding_name}", sent), "InvokeBinding")
        return BindingResponse(b"", {})

    async def shutdown(self) -> DaprResponse:
        _ok(self.send("POST", "/v1.0/shutdown"), "Shutdown")
        return DaprResponse()


class _FakeStub:
    """The generated gRPC stub's one call that orderflow_common.sidecar makes itself."""

    def __init__(self, client: FakeDaprClient) -> None:
        self._client = client

    async def SubscribeConfiguration(  # noqa: N802  # the generated stub's name
        self, request: api_v1.SubscribeConfigurationRequest, metadata: Any = None
    ) -> AsyncIterator[api_v1.SubscribeConfigurationResponse]:
        path = f"/v1.0/configuration/{request.store_name}/subscribe"
        response = self._client.send("GET", path, params={"key": list(request.keys)})
        found = _ok(response, "SubscribeConfiguration").json()
        yield api_v1.SubscribeConfigurationResponse(id=str(found["id"]))
        await asyncio.Event().wait()  # no change ever comes


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """A gRPC call's failure, as grpc.aio raises it."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def _ok(response: httpx.Response, call: str) -> httpx.Response:
    """The answer, or the gRPC error the SDK raises for it."""
    if response.is_success:
        return response
    code = (
        grpc.StatusCode.UNAUTHENTICATED if response.status_code == 401 else grpc.StatusCode.INTERNAL
    )
    raise rpc_error(code, f"{call}: {response.text}")
