import httpx
from fastapi import FastAPI

from orderflow_common.app import create_service_app
from orderflow_common.counts import RecentCounts
from payments import charges
from payments.settings import PaymentsSettings

NAME = "payments"


def create_app(
    settings: PaymentsSettings, sidecar: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    app = create_service_app(NAME, settings, [charges.router], sidecar)
    app.state.attempts = RecentCounts()
    return app
