import asyncio

import httpx
from fastapi import FastAPI

from inventory import stock
from inventory.settings import InventorySettings
from orderflow_common.app import create_service_app

NAME = "inventory"


def create_app(
    settings: InventorySettings, sidecar: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    app = create_service_app(NAME, settings, [stock.router], sidecar)
    app.state.stock_turns = asyncio.Lock()
    return app
