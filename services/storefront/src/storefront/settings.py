from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class StorefrontSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STOREFRONT_")

    state_store: str = "orderstore"
    inventory_app_id: str = "inventory"
    payments_app_id: str = "payments"
    # Guards the fault-flag routes; when unset they are not mounted (fault injection is off).
    fault_token: SecretStr | None = None
