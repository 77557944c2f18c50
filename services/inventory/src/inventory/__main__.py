"""``python -m inventory``: serve inventory with settings from the environment."""

from inventory.main import NAME, create_app
from inventory.settings import InventorySettings
from orderflow_common.app import run

settings = InventorySettings()
run(NAME, create_app(settings), settings)
