"""The steady scenario: `make load SCENARIO=steady`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Steady
from orderflow_loadtest.shopper import Shopper

__all__ = ["Shopper", "Steady"]
