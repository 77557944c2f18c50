import httpx
from fastapi import FastAPI

from orderflow_common.app import create_service_app
from payments import charges
from payments.settings import PaymentsSettings

NAME = "payments"


def create_app(
    settings: PaymentsSettings, sidecar: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    app = create_service_app(NAME, settings, [charges.router], sidecar)
    app.state.attempts = charges.Attempts()
    return app
