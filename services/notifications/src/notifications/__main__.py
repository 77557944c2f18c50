"""``python -m notifications``: serve notifications with settings from the environment."""

from notifications.main import NAME, create_app
from notifications.settings import NotificationsSettings
from orderflow_common.app import run

settings = NotificationsSettings()
run(NAME, create_app(settings), settings)
