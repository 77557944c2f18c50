from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_")

    state_store: str = "statestore"
