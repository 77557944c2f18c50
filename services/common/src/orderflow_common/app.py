"""The pieces every service's ``create_app`` is built from: the FastAPI app with its
Dapr client in the lifespan and a health route, and the runner.

An infrastructure fault is never a 500: when the sidecar fails a building-block call or
does not answer at all (refused, reset, or slower than the deadline
DAPR_API_TIMEOUT_SECONDS), the SDK raises a gRPC error (:class:`grpc.RpcError`, the SDK's
DaprGrpcError among them), a :class:`DaprInternalError`, or, on its HTTP invocation path,
an aiohttp or timeout error; the route answers 503 with an :class:`Unavailable` body,
which tells the client to try again later.
https://www.rfc-editor.org/rfc/rfc9110#name-503-service-unavailable
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import grpc
import uvicorn
from dapr.clients.exceptions import DaprInternalError
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from orderflow_common import faults
from orderflow_common.auth import UNAUTHORIZED, app_token
from orderflow_common.deps import get_dapr
from orderflow_common.limits import BodySizeLimit
from orderflow_common.logs import configure_logging
from orderflow_common.settings import ServiceSettings
from orderflow_common.sidecar import DaprClient, cause, configure_sdk, connect, grpc_status
from orderflow_common.telemetry import Telemetry, instrument
from orderflow_common.telemetry import configure as configure_telemetry

log = logging.getLogger(__name__)


class Unavailable(BaseModel):
    """The body of every 503 a service answers for an infrastructure fault."""

    detail: str
    cause: str


# For a route's ``responses=``, so that its OpenAPI documents the 503 and its body.
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "model": Unavailable,
        "description": "A dependency (the Dapr sidecar or a building block behind it) is"
        " down or slow; try again later.",
    }
}


def create_service_app(
    name: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    dapr: DaprClient | None = None,
    telemetry: Telemetry | None = None,
    *,
    open_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """Build a service's app. Every route of ``routers`` requires the app API token
    (orderflow_common.auth); ``open_routers`` do not: a public API, or one guarded by a
    token of its own. ``dapr`` replaces the SDK client of the Dapr sidecar: unit tests
    pass a double (orderflow_common.testing), everything else leaves it out.
    ``telemetry`` replaces the global OpenTelemetry providers (tests of the telemetry
    itself)."""
    reporting = telemetry or Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _client(dapr, settings, reporting) as client:
            get_dapr.provide(app, client)
            watcher = None
            if settings.faults_enabled:
                # In the background: the sidecar waits for this app to be healthy first.
                watcher = asyncio.create_task(faults.watch(client, flags))
                watcher.add_done_callback(_log_failure)
            yield
            if watcher is not None:
                watcher.cancel()

    app = FastAPI(title=name, lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # It wraps the whole middleware stack, so a 413 or a 500 is traced and counted too.
    instrument(app, reporting)
    token = Depends(app_token(settings.app_api_token))
    # Without fault injection the flags stay off (nothing updates them) and the routes
    # that read and receive them do not exist.
    flags = faults.Faults(name)
    faults.get_faults.provide(app, flags)
    if settings.faults_enabled:
        app.include_router(faults.router, dependencies=[token], responses=UNAUTHORIZED)

    @app.exception_handler(DaprInternalError)
    async def dapr_failed(_: Request, error: DaprInternalError) -> JSONResponse:
        # The sidecar failed us after its own retries: our fault, and worth retrying later.
        return _unavailable("a Dapr building block is unavailable", cause(error))

    @app.exception_handler(grpc.RpcError)
    async def dapr_call_failed(_: Request, error: grpc.RpcError) -> JSONResponse:
        # A failed building block, or the sidecar down, restarting, or still waiting on a
        # building block (Redis) when the deadline (DAPR_API_TIMEOUT_SECONDS) ran out.
        if grpc_status(error) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return _unreachable(error)
        return _unavailable("a Dapr building block is unavailable", cause(error))

    @app.exception_handler(aiohttp.ClientError)
    async def invocation_unreachable(_: Request, error: aiohttp.ClientError) -> JSONResponse:
        # Only the SDK's HTTP invocation client makes aiohttp calls here.
        return _unreachable(error)

    @app.exception_handler(TimeoutError)
    async def invocation_timed_out(_: Request, error: TimeoutError) -> JSONResponse:
        return _unreachable(error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers:
        app.include_router(router, dependencies=[token], responses=UNAUTHORIZED)
    for router in open_routers:
        app.include_router(router)
    return app


@asynccontextmanager
async def _client(
    given: DaprClient | None, settings: ServiceSettings, telemetry: Telemetry
) -> AsyncIterator[DaprClient]:
    if given is not None:
        configure_sdk(settings)  # the double sends the token the SDK would
        yield given
        return
    async with connect(settings, telemetry) as client:
        yield client


def _unreachable(error: BaseException) -> JSONResponse:
    log.warning("Dapr sidecar did not answer", extra={"error": cause(error)})
    return _unavailable("the Dapr sidecar did not answer", cause(error))


def _unavailable(detail: str, cause: str) -> JSONResponse:
    body = Unavailable(detail=detail, cause=cause)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("fault flags unavailable", extra={"error": str(task.exception())})


def run(name: str, app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` with one uvicorn worker: we scale with processes and replicas.

    On uvloop's event loop and the httptools parser (both C) rather than asyncio's own
    loop and the pure-Python h11, and without the access log: a JSON line per request
    costs more than the request's own work here, and OpenTelemetry already counts and
    times every request (RED metrics) and traces it.
    https://www.uvicorn.org/settings/#implementation"""
    configure_logging(name, settings.log_level)
    configure_telemetry(name)
    uvicorn.run(
        app,
        host=settings.app_host,
        port=settings.app_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        limit_concurrency=settings.max_concurrency,
        timeout_graceful_shutdown=10,
    )
