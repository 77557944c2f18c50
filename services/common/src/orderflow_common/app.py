"""The pieces every service's ``create_app`` is built from: the FastAPI app with its
Dapr client in the lifespan and a health route, typed dependencies, and the runner."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, cast

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse

from orderflow_common.dapr import DaprClient, DaprError
from orderflow_common.logs import configure_logging
from orderflow_common.settings import ServiceSettings


def create_service_app(
    name: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    sidecar: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build a service's app. ``sidecar`` replaces the network transport to the Dapr
    sidecar; unit tests pass a fake one, everything else leaves it out."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with DaprClient(settings, transport=sidecar) as dapr:
            app.state.dapr = dapr
            yield

    app = FastAPI(title=name, lifespan=lifespan)
    app.state.settings = settings

    @app.exception_handler(DaprError)
    async def dapr_failed(_: Request, error: DaprError) -> JSONResponse:
        # The sidecar failed us after its own retries: our fault, and worth retrying later.
        return JSONResponse(
            {"detail": "a Dapr building block is unavailable", "cause": str(error)},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for router in routers:
        app.include_router(router)
    return app


def _dapr(request: Request) -> DaprClient:
    return cast(DaprClient, request.app.state.dapr)


DaprDep = Annotated[DaprClient, Depends(_dapr)]


def run(name: str, app: FastAPI, settings: ServiceSettings) -> None:
    """Serve ``app`` with one uvicorn worker: we scale with processes and replicas."""
    configure_logging(name, settings.log_level)
    uvicorn.run(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_config=None,
        limit_concurrency=settings.max_concurrency,
        timeout_graceful_shutdown=10,
    )
