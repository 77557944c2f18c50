from fastapi import FastAPI

from orderflow_common.app import create_service_app
from orderflow_common.sidecar import DaprClient
from storefront import compensation, faultflags, orders, progress, watch
from storefront.settings import StorefrontSettings

NAME = "storefront"


def create_app(settings: StorefrontSettings, dapr: DaprClient | None = None) -> FastAPI:
    # The order API is the public edge; the fault admin API exists only where its own
    # token is set (never in the prod overlay).
    token = settings.fault_token
    admin = [faultflags.admin_router(token)] if token is not None else []
    app = create_service_app(
        NAME,
        settings,
        [progress.router, compensation.router, watch.router],
        dapr,
        open_routers=[orders.router, *admin],
    )
    app.add_exception_handler(orders.RefusedError, orders.refused_handler)  # type: ignore[arg-type]
    return app
