from fastapi import FastAPI

from orderflow_common.app import create_service_app
from orderflow_common.counts import RecentCounts
from orderflow_common.sidecar import DaprClient
from payments import charges, deps
from payments.settings import PaymentsSettings

NAME = "payments"


def create_app(settings: PaymentsSettings, dapr: DaprClient | None = None) -> FastAPI:
    app = create_service_app(NAME, settings, [charges.router], dapr)
    deps.get_settings.provide(app, settings)
    deps.get_attempts.provide(app, RecentCounts())
    return app
