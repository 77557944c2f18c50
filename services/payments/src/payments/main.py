from fastapi import FastAPI

from orderflow_common.app import create_service_app
from orderflow_common.counts import RecentCounts
from orderflow_common.sidecar import DaprClient
from payments import charges
from payments.settings import PaymentsSettings

NAME = "payments"


def create_app(settings: PaymentsSettings, dapr: DaprClient | None = None) -> FastAPI:
    app = create_service_app(NAME, settings, [charges.router], dapr)
    app.state.attempts = RecentCounts()
    return app
