"""``python -m payments``: serve payments with settings from the environment."""

from orderflow_common.app import run
from payments.main import NAME, create_app
from payments.settings import PaymentsSettings

settings = PaymentsSettings()
run(NAME, create_app(settings), settings)
