"""The soak scenario: `make load SCENARIO=soak`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Soak
from orderflow_loadtest.shopper import Shopper

__all__ = ["Shopper", "Soak"]
