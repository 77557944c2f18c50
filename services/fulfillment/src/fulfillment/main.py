from fastapi import FastAPI

from fulfillment import deps, shipments
from fulfillment.settings import FulfillmentSettings
from orderflow_common.app import create_service_app
from orderflow_common.sidecar import DaprClient

NAME = "fulfillment"


def create_app(settings: FulfillmentSettings, dapr: DaprClient | None = None) -> FastAPI:
    app = create_service_app(NAME, settings, [shipments.router], dapr)
    deps.get_settings.provide(app, settings)
    return app
