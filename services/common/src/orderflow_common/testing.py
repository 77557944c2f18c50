"""A fake Dapr sidecar for unit tests: it stands at the adapter's HTTP boundary, records
every request, and answers with what the test configured."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Responder = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class SidecarCall:
    method: str
    path: str
    params: dict[str, str]
    body: Any


@dataclass
class FakeSidecar:
    """Answers by path; a path without a responder gets a 404 like an unknown route."""

    responders: dict[str, Responder] = field(default_factory=dict)
    calls: list[SidecarCall] = field(default_factory=list)

    def on(self, path: str, status: int, body: Any = None) -> None:
        def respond(_: httpx.Request) -> httpx.Response:
            return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

        self.responders[path] = respond

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(
            SidecarCall(
                method=request.method,
                path=request.url.path,
                params=dict(request.url.params),
                body=json.loads(request.content) if request.content else None,
            )
        )
        responder = self.responders.get(request.url.path)
        return responder(request) if responder else httpx.Response(404)
