from fastapi import FastAPI

from orderflow_common import faultadmin
from orderflow_common.app import create_service_app
from orderflow_common.sidecar import DaprClient
from storefront import compensation, deps, orders, progress, watch
from storefront.settings import StorefrontSettings

NAME = "storefront"


def create_app(settings: StorefrontSettings, dapr: DaprClient | None = None) -> FastAPI:
    # The order API is the public edge; the fault admin API exists only where fault
    # injection is on and its own token is set (never in the prod overlay).
    token = settings.fault_token
    admin = (
        [faultadmin.admin_router(token, settings.fault_services)]
        if settings.faults_enabled and token is not None
        else []
    )
    app = create_service_app(
        NAME,
        settings,
        [progress.router, compensation.router, watch.router],
        dapr,
        open_routers=[orders.router, *admin],
    )
    deps.get_settings.provide(app, settings)
    app.add_exception_handler(orders.RefusedError, orders.refused_handler)  # type: ignore[arg-type]
    return app
