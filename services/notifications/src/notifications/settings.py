from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_")

    state_store: str = "statestore"
