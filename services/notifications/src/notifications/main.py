from fastapi import FastAPI

from notifications import deps, events
from notifications.settings import NotificationsSettings
from orderflow_common.app import create_service_app
from orderflow_common.counts import RecentCounts
from orderflow_common.sidecar import DaprClient

NAME = "notifications"


def create_app(settings: NotificationsSettings, dapr: DaprClient | None = None) -> FastAPI:
    app = create_service_app(NAME, settings, [events.router], dapr)
    deps.get_settings.provide(app, settings)
    deps.get_deliveries.provide(app, RecentCounts())
    return app
