"""A fake Dapr sidecar for unit tests: it stands at the adapter's HTTP boundary, records
every request, keeps state like the Redis state store does (versions as ETags, first-write
keys), and answers other paths with what the test configured."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from orderflow_common.auth import TOKEN_HEADER

Responder = Callable[[httpx.Request], httpx.Response]
STARTUP_PATHS = ("/v1.0/healthz", "/v1.0/configuration/")
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
        self.on("/v1.0/healthz/outbound", 204)
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

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

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
