import httpx
from fastapi import FastAPI

from orderflow_common.app import create_service_app
from storefront import orders
from storefront.settings import StorefrontSettings

NAME = "storefront"


def create_app(
    settings: StorefrontSettings, sidecar: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    return create_service_app(NAME, settings, [orders.router], sidecar)
