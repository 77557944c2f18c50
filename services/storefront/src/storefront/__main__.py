"""``python -m storefront``: serve storefront with settings from the environment."""

from orderflow_common.app import run
from storefront.main import NAME, create_app
from storefront.settings import StorefrontSettings

settings = StorefrontSettings()
run(NAME, create_app(settings), settings)
