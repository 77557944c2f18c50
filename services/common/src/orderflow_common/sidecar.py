"""Every service talks to its Dapr sidecar through the Dapr Python SDK's async client,
``dapr.aio.clients.DaprClient``: state, the outbox transaction, publish, configuration and
bindings over gRPC, service invocation over HTTP (the SDK's default for HTTP apps).
https://docs.dapr.io/developing-applications/sdks/python/python-client/

This module opens that client with a service's settings and holds what the SDK leaves to
us: the project's state conventions (JSON values, an ETag conflict as ``False`` rather
than an error, the outbox transaction) and two workarounds for SDK defects, each named
and linked below. Retries and timeouts are not here: they live in the Dapr Resiliency
resource (deploy/dapr/resiliency.yaml), and every call gets the deadline
DAPR_API_TIMEOUT_SECONDS.
"""

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
from dapr.aio.clients import DaprClient
from dapr.aio.clients.health import DaprHealth
from dapr.clients.exceptions import DaprGrpcError, DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation
from dapr.clients.grpc._state import Concurrency, StateOptions
from dapr.conf import settings as sdk_settings
from dapr.proto import api_v1
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.propagate import inject
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from orderflow_common.settings import ServiceSettings
from orderflow_common.telemetry import Telemetry

# DaprClient is the SDK's, named here so that services import one module for the sidecar.
__all__ = [
    "SIDECAR_ERRORS",
    "DaprClient",
    "State",
    "cause",
    "configure_sdk",
    "connect",
    "get_bulk_state",
    "get_configuration",
    "get_state",
    "grpc_status",
    "publish",
    "save_state",
    "save_with_event",
    "trace_headers",
    "watch_configuration",
]

JSON = Mapping[str, Any]
FIRST_WRITE = StateOptions(concurrency=Concurrency.first_write)


def configure_sdk(settings: ServiceSettings) -> None:
    """Hand this service's settings to the SDK, which reads its own from a module-level
    object (filled from the environment at import): the sidecar's address, the API token
    it sends with every call (``dapr-api-token``, on gRPC and HTTP alike) and the
    deadline of every gRPC call. https://docs.dapr.io/reference/environment/"""
    given = {
        "DAPR_RUNTIME_HOST": settings.dapr_host,
        "DAPR_HTTP_PORT": settings.dapr_http_port,
        "DAPR_GRPC_PORT": settings.dapr_grpc_port,
        "DAPR_API_TOKEN": settings.dapr_api_token.get_secret_value(),
        "DAPR_API_TIMEOUT_SECONDS": settings.dapr_api_timeout_seconds,
        "DAPR_HEALTH_TIMEOUT": settings.dapr_health_timeout_seconds,
    }
    for name, value in given.items():
        setattr(sdk_settings, name, value)  # its attributes are made from a module's names


def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers, for the SDK's HTTP invocation client,
    which has no instrumentation of its own: the sidecar continues the caller's trace.
    https://docs.dapr.io/operations/observability/tracing/w3c-tracing-overview/"""
    headers: dict[str, str] = {}
    inject(headers)
    return headers


@asynccontextmanager
async def connect(settings: ServiceSettings, telemetry: Telemetry) -> AsyncIterator[DaprClient]:
    """The SDK client for this service's sidecar, its gRPC channel traced (a client span
    per call, and its context in the call's metadata, which the sidecar continues)."""
    configure_sdk(settings)
    # Workaround: the SDK's constructors wait for the sidecar with blocking urllib calls
    # and time.sleep (dapr/clients/health.py), which would stall the event loop for as
    # long as the sidecar is not up (dapr 1.18.3, DaprGrpcClientAsync.__init__ and
    # DaprHttpClient.__init__). The SDK's own async health check waits first, so the
    # constructors' checks answer at once.
    await DaprHealth.wait_for_sidecar()  # type: ignore[no-untyped-call]  # unannotated
    client = DaprClient(
        headers_callback=trace_headers,
        interceptors=aio_client_interceptors(  # type: ignore[no-untyped-call]  # unannotated
            tracer_provider=telemetry.tracer_provider
        ),
        http_timeout_seconds=max(1, round(settings.dapr_api_timeout_seconds)),
    )
    async with client:
        yield client


# State https://docs.dapr.io/reference/api/state_api/


@dataclass(frozen=True)
class State:
    """A state store value with the ETag that guards the next write to it."""

    value: Any
    etag: str


async def get_state(dapr: DaprClient, store: str, key: str) -> State | None:
    found = await dapr.get_state(store, key)
    if not found.data:  # the sidecar answers an unknown key with no data
        return None
    return State(value=json.loads(found.data), etag=found.etag)


async def get_bulk_state(dapr: DaprClient, store: str, keys: Sequence[str]) -> dict[str, State]:
    """Those of ``keys`` that exist, each with its ETag, in one call."""
    found = await dapr.get_bulk_state(store, list(keys))
    return {
        item.key: State(value=json.loads(item.data), etag=item.etag)
        for item in found.items
        if item.data
    }


async def save_state(
    dapr: DaprClient,
    store: str,
    key: str,
    value: Any,
    *,
    etag: str | None = None,
    insert_only: bool = False,
    keep: bool = False,
) -> bool:
    """Save ``value``; with ``etag``, only over that version. Returns False when the ETag
    no longer matches (someone wrote in between), so the caller can decide.

    ``insert_only`` writes only if ``key`` was never written with it before: Redis treats
    first-write concurrency with ETag "0" as "must not exist yet" and refuses otherwise.
    Every writer of such a key must use it.

    ``keep`` exempts the key from the store's time to live (statestores.yaml).
    https://docs.dapr.io/developing-applications/building-blocks/state-management/state-store-ttl/"""
    guard = "0" if insert_only else etag
    try:
        await dapr.save_state(
            store,
            key,
            json.dumps(value),
            etag=guard,
            options=FIRST_WRITE if guard is not None else None,
            state_metadata={"ttlInSeconds": "-1"} if keep else {},
        )
    except DaprInternalError as error:
        if _lost_race(error):
            return False
        raise
    return True


def _lost_race(error: DaprInternalError) -> bool:
    """Whether a save failed on its ETag. Workaround: the SDK's ``save_state`` raises a
    DaprInternalError with the gRPC status dropped (only its text is kept), so the status
    is read from the error it was raised from; the sidecar answers an ETag mismatch with
    ABORTED (an HTTP 409 on its HTTP API): https://github.com/dapr/dapr/pull/2648"""
    cause = error.__cause__
    return isinstance(cause, grpc.aio.AioRpcError) and cause.code() == grpc.StatusCode.ABORTED


async def save_with_event(
    dapr: DaprClient, store: str, key: str, value: Any, *, event_type: str, event: JSON
) -> None:
    """Save ``value`` and publish ``event`` in one transaction: the state store's outbox
    publishes the event only once the state is written, and always then. The event is a
    projection (what subscribers get instead of the stored value); the operation's
    metadata becomes CloudEvent attributes, so ``type`` is set there, and so is
    ``traceparent``: daprd 1.18 leaves the outbox event's own traceparent empty
    (pkg/runtime/pubsub/outbox.go), so subscribers would start a new trace.
    https://docs.dapr.io/developing-applications/building-blocks/state-management/howto-outbox/"""
    metadata = {"type": event_type}
    TraceContextTextMapPropagator().inject(metadata)  # the current span's traceparent
    operations = [
        TransactionalStateOperation(key=key, data=json.dumps(value), metadata=metadata),
        TransactionalStateOperation(
            key=key,
            data=json.dumps(dict(event)),
            metadata={"outbox.projection": "true", "contentType": "application/json"},
        ),
    ]
    try:
        await dapr.execute_state_transaction(store, operations)
    except grpc.RpcError as error:
        # Named by its key, so that the caller's 503 says which order it was.
        raise DaprInternalError(f"transaction on {store}/{key}: {cause(error)}") from error


# Pub/sub https://docs.dapr.io/reference/api/pubsub_api/


async def publish(
    dapr: DaprClient, pubsub: str, topic: str, data: JSON, *, event_type: str
) -> None:
    """Publish ``data`` as a CloudEvent whose ``type`` is ``event_type``, so that
    subscribers can route on it."""
    await dapr.publish_event(
        pubsub,
        topic,
        json.dumps(dict(data)),
        publish_metadata={"cloudevent.type": event_type},
        data_content_type="application/json",
    )


# Configuration https://docs.dapr.io/reference/api/configuration_api/


async def get_configuration(dapr: DaprClient, store: str, keys: Sequence[str]) -> dict[str, str]:
    found = await dapr.get_configuration(store, list(keys))
    return {key: item.value for key, item in found.items.items()}


async def watch_configuration(
    dapr: DaprClient, store: str, keys: Sequence[str], on_change: Callable[[dict[str, str]], None]
) -> None:
    """Call ``on_change`` with every change of ``keys`` until cancelled.

    Workaround: the SDK's async ``subscribe_configuration`` runs a thread that iterates
    the async gRPC stub's stream, which cannot work outside the event loop; this reads the
    same SubscribeConfiguration stream on the loop instead, through the client's own
    stub and traced channel. https://github.com/dapr/python-sdk/issues/819
    The token goes along by hand: the SDK's token interceptor covers unary-unary and
    stream-stream calls only, and this one is unary-stream
    (dapr/aio/clients/grpc/interceptors.py)."""
    request = api_v1.SubscribeConfigurationRequest(store_name=store, keys=list(keys))
    token = (("dapr-api-token", str(sdk_settings.DAPR_API_TOKEN)),)
    async for update in dapr._stub.SubscribeConfiguration(request, metadata=token):
        if update.items:  # the first answer only names the subscription
            on_change({key: item.value for key, item in update.items.items()})


# What a failed or unanswered call to the sidecar raises: a gRPC error (the SDK's
# DaprGrpcError among them), the SDK's own DaprInternalError (DaprHttpError too, which its
# HTTP invocation client raises for any answer but a 2xx), or, from that client, an
# aiohttp error or a timeout.
SIDECAR_ERRORS = (grpc.RpcError, DaprInternalError, aiohttp.ClientError, TimeoutError)


def grpc_status(error: BaseException) -> grpc.StatusCode | None:
    """The gRPC status of a failed call, as grpc.aio raises it or as the SDK wraps it."""
    if isinstance(error, grpc.aio.AioRpcError | DaprGrpcError):
        code: grpc.StatusCode = error.code()
        return code
    return None


def cause(error: BaseException) -> str:
    """One readable line for any of SIDECAR_ERRORS (a gRPC error's text is many lines)."""
    code = grpc_status(error)
    if code is not None and isinstance(error, grpc.aio.AioRpcError | DaprGrpcError):
        return f"sidecar answered {code.name}: {error.details()}"
    if isinstance(error, DaprInternalError):
        return str(error)
    return f"{type(error).__name__}: {error}".rstrip(": ")  # some have no message
