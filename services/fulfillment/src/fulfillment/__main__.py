"""``python -m fulfillment``: serve fulfillment with settings from the environment."""

from fulfillment.main import NAME, create_app
from fulfillment.settings import FulfillmentSettings
from orderflow_common.app import run

settings = FulfillmentSettings()
run(NAME, create_app(settings), settings)
