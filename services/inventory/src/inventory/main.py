import asyncio

from fastapi import FastAPI

from inventory import deps, stock
from inventory.settings import InventorySettings
from orderflow_common.app import create_service_app
from orderflow_common.sidecar import DaprClient

NAME = "inventory"


def create_app(settings: InventorySettings, dapr: DaprClient | None = None) -> FastAPI:
    app = create_service_app(NAME, settings, [stock.router], dapr)
    deps.get_settings.provide(app, settings)
    deps.get_turns.provide(app, asyncio.Lock())
    return app
