import httpx
from fastapi import FastAPI

from orderflow_common.app import create_service_app
from storefront import compensation, faultflags, orders, progress, watch
from storefront.settings import StorefrontSettings

NAME = "storefront"


def create_app(
    settings: StorefrontSettings, sidecar: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    app = create_service_app(
        NAME,
        settings,
        [orders.router, progress.router, faultflags.router, compensation.router, watch.router],
        sidecar,
    )
    app.add_exception_handler(orders.RefusedError, orders.refused_handler)  # type: ignore[arg-type]
    return app
