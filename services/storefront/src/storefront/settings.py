from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class StorefrontSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STOREFRONT_")

    state_store: str = "orderstore"
    inventory_app_id: str = "inventory"
    payments_app_id: str = "payments"
    # How often owed compensations are tried again (compensation.py).
    compensation_interval_seconds: float = Field(default=5.0, gt=0)
    # Guards the fault-flag routes; when unset they answer 404 (fault injection is off).
    fault_token: SecretStr | None = None
