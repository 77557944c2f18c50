from pydantic_settings import SettingsConfigDict

from orderflow_common.settings import ServiceSettings


class StorefrontSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STOREFRONT_")

    payments_app_id: str = "payments"
    pubsub_name: str = "pubsub"
    orders_topic: str = "orders"
