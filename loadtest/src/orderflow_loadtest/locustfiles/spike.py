"""The spike scenario: `make load SCENARIO=spike`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Spike
from orderflow_loadtest.shopper import Shopper

__all__ = ["Shopper", "Spike"]
