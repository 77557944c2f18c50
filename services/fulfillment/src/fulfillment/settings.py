from pydantic import Field
from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class FulfillmentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FULFILLMENT_")

    state_store: str = "statestore"
    # CPU time each order costs: packing, labels, carrier booking, as one busy core.
    work_ms: int = Field(default=20, ge=0, le=10_000)
