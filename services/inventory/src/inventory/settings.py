from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

    state_store: str = "statestore"
    # Stock a fresh store starts with, per SKU.
    initial_stock: int = 1000
