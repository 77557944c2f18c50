"""The one typed async adapter through which every service talks to its Dapr sidecar.

It speaks the sidecar's HTTP API with httpx, so that HTTP client instrumentation sees
every call and can carry the trace context onward. Retries and timeouts are not here:
they live in the Dapr Resiliency resource (deploy/dapr/resiliency.yaml).
https://docs.dapr.io/reference/api/

Under httpx's API the requests travel on aiohttp (httpx-aiohttp's transport). httpx's
default transport (httpcore on anyio) cost about 1.6 ms of CPU per call to a sidecar on
a 2-CPU machine, three times aiohttp's 0.5 ms, and an order makes some fifteen such calls
across the services; httpcore also looks at every pooled connection on every call, so a
pool that grew in a burst made every later call dearer.
"""

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_aiohttp import AiohttpTransport
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderflow_common.auth import TOKEN_HEADER
from orderflow_common.settings import ServiceSettings
from orderflow_common.telemetry import Telemetry

JSON = Mapping[str, Any]
# Up to 100 connections to the sidecar at once, each kept open for the next call (httpx's
# own pool kept only 20 idle, so past 20 calls at once each further call opened and
# closed a connection of its own: a TCP handshake on both sides, per call).
# https://docs.aiohttp.org/en/stable/client_advanced.html#limiting-connection-pool-size
SIDECAR_CONNECTIONS = httpx.Limits(max_connections=100)


class DaprError(Exception):
    """The sidecar refused or failed a building-block call (not a business answer)."""

    def __init__(self, operation: str, response: httpx.Response) -> None:
        super().__init__(f"{operation}: sidecar answered {response.status_code}: {response.text}")
        self.status_code = response.status_code


@dataclass(frozen=True)
class State:
    """A state store value with the ETag that guards the next write to it."""

    value: Any
    etag: str


class DaprClient:
    def __init__(
        self,
        settings: ServiceSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.dapr_base_url,
            # The sidecar answers 401 to any call without it (but its health checks).
            # https://docs.dapr.io/operations/security/api-token/
            headers={TOKEN_HEADER: settings.dapr_api_token.get_secret_value()},
            timeout=settings.dapr_api_timeout_seconds,
            transport=transport or AiohttpTransport(limits=SIDECAR_CONNECTIONS),
        )
        # A client span per call, and its traceparent on the request: the sidecar makes
        # its own spans children of it and passes the context on to the callee or topic.
        # https://docs.dapr.io/operations/observability/tracing/w3c-tracing-overview/
        reporting = telemetry or Telemetry()
        HTTPXClientInstrumentor.instrument_client(
            self._http, reporting.tracer_provider, reporting.meter_provider
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def wait_until_ready(self) -> None:
        """Wait for the sidecar's own API (not the app channel) to answer; the caller
        bounds the wait. https://docs.dapr.io/reference/api/health_api/"""
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await self._http.get("/v1.0/healthz/outbound")).status_code == 204:
                    return
            await asyncio.sleep(0.1)

    # Service invocation https://docs.dapr.io/reference/api/service_invocation_api/

    async def invoke(
        self, app_id: str, method: str, body: JSON | None = None, *, http_method: str = "POST"
    ) -> httpx.Response:
        """Call ``method`` on ``app_id`` and return the callee's answer as is: a 4xx from the
        callee is a business answer for the caller to read."""
        return await self._http.request(
            http_method, f"/v1.0/invoke/{app_id}/method/{method}", json=body
        )

    # Pub/sub https://docs.dapr.io/reference/api/pubsub_api/

    async def publish(self, pubsub: str, topic: str, data: JSON, *, event_type: str) -> None:
        """Publish ``data`` as a CloudEvent whose ``type`` is ``event_type``, so that
        subscribers can route on it."""
        response = await self._http.post(
            f"/v1.0/publish/{pubsub}/{topic}",
            json=data,
            params={"metadata.cloudevent.type": event_type},
        )
        if response.status_code != httpx.codes.NO_CONTENT:
            raise DaprError(f"publish to {pubsub}/{topic}", response)

    # State https://docs.dapr.io/reference/api/state_api/

    async def get_state(self, store: str, key: str) -> State | None:
        response = await self._http.get(f"/v1.0/state/{store}/{key}")
        if response.status_code == httpx.codes.NO_CONTENT:
            return None
        if response.status_code != httpx.codes.OK:
            raise DaprError(f"get {store}/{key}", response)
        return State(value=response.json(), etag=response.headers.get("etag", ""))

    async def get_bulk_state(self, store: str, keys: Sequence[str]) -> dict[str, State]:
        """Those of ``keys`` that exist, each with its ETag, in one call."""
        response = await self._http.post(f"/v1.0/state/{store}/bulk", json={"keys": list(keys)})
        if response.status_code != httpx.codes.OK:
            raise DaprError(f"bulk get {store}", response)
        return {
            item["key"]: State(value=item["data"], etag=item.get("etag", ""))
            for item in response.json()
            if "data" in item
        }

    async def save_state(
        self,
        store: str,
        key: str,
        value: Any,
        *,
        etag: str | None = None,
        insert_only: bool = False,
        keep: bool = False,
    ) -> bool:
        """Save ``value``; with ``etag``, only over that version. Returns False when the
        ETag no longer matches (someone wrote in between), so the caller can decide.

        ``insert_only`` writes only if ``key`` was never written with it before: Redis
        treats first-write concurrency with ETag "0" as "must not exist yet" and answers
        a conflict otherwise. Every writer of such a key must use it.

        ``keep`` exempts the key from the store's time to live (statestores.yaml).
        https://docs.dapr.io/developing-applications/building-blocks/state-management/state-store-ttl/"""
        item: dict[str, Any] = {"key": key, "value": value}
        if keep:
            item["metadata"] = {"ttlInSeconds": "-1"}
        if insert_only:
            item["etag"] = "0"
            item["options"] = {"concurrency": "first-write"}
        elif etag is not None:
            item["etag"] = etag
            item["options"] = {"concurrency": "first-write"}
        response = await self._http.post(f"/v1.0/state/{store}", json=[item])
        if response.status_code == httpx.codes.CONFLICT:
            return False
        if response.status_code != httpx.codes.NO_CONTENT:
            raise DaprError(f"save {store}/{key}", response)
        return True

    async def save_with_event(
        self, store: str, key: str, value: Any, *, event_type: str, event: JSON
    ) -> None:
        """Save ``value`` and publish ``event`` in one transaction: the state store's
        outbox publishes the event only once the state is written, and always then.
        The event is a projection (what subscribers get instead of the stored value);
        the operation's metadata becomes CloudEvent attributes, so ``type`` is set there,
        and so is ``traceparent``: daprd 1.18 leaves the outbox event's own traceparent
        empty (pkg/runtime/pubsub/outbox.go), so subscribers would start a new trace.
        https://docs.dapr.io/developing-applications/building-blocks/state-management/howto-outbox/"""
        metadata = {"type": event_type}
        TraceContextTextMapPropagator().inject(metadata)  # the current span's traceparent
        operations = [
            {
                "operation": "upsert",
                "request": {"key": key, "value": value, "metadata": metadata},
            },
            {
                "operation": "upsert",
                "request": {
                    "key": key,
                    "value": dict(event),
                    "metadata": {"outbox.projection": "true", "contentType": "application/json"},
                },
            },
        ]
        response = await self._http.post(
            f"/v1.0/state/{store}/transaction", json={"operations": operations}
        )
        if response.status_code != httpx.codes.NO_CONTENT:
            raise DaprError(f"transaction on {store}/{key}", response)

    # Configuration https://docs.dapr.io/reference/api/configuration_api/

    async def get_configuration(self, store: str, keys: Sequence[str]) -> dict[str, str]:
        response = await self._http.get(
            f"/v1.0/configuration/{store}", params=[("key", key) for key in keys]
        )
        if response.status_code == httpx.codes.NO_CONTENT:  # none of the keys exists
            return {}
        if response.status_code != httpx.codes.OK:
            raise DaprError(f"get configuration from {store}", response)
        return {key: str(item.get("value", "")) for key, item in response.json().items()}

    async def subscribe_configuration(self, store: str, keys: Sequence[str]) -> str:
        """Ask the sidecar to POST changes of ``keys`` to ``/configuration/{store}/{key}``."""
        response = await self._http.get(
            f"/v1.0/configuration/{store}/subscribe", params=[("key", key) for key in keys]
        )
        if response.status_code != httpx.codes.OK:
            raise DaprError(f"subscribe to configuration in {store}", response)
        return str(response.json()["id"])

    # Output bindings https://docs.dapr.io/reference/api/bindings_api/

    async def invoke_binding(
        self, name: str, operation: str, data: Any, metadata: Mapping[str, str]
    ) -> None:
        response = await self._http.post(
            f"/v1.0/bindings/{name}",
            content=json.dumps({"operation": operation, "data": data, "metadata": metadata}),
            headers={"content-type": "application/json"},
        )
        if response.status_code not in (httpx.codes.OK, httpx.codes.NO_CONTENT):
            raise DaprError(f"binding {name} {operation}", response)

    # Shutdown https://docs.dapr.io/reference/api/shutdown_api/

    async def shutdown(self) -> None:
        """Ask the sidecar to shut down gracefully. It exits, and what runs it (the
        kubelet, or the local launcher) starts it again."""
        response = await self._http.post("/v1.0/shutdown")
        if response.status_code != httpx.codes.NO_CONTENT:
            raise DaprError("shutdown", response)
