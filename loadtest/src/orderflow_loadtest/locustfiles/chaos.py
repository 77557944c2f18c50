"""The chaos scenario: `make load SCENARIO=chaos`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Chaos
from orderflow_loadtest.shopper import Shopper

__all__ = ["Chaos", "Shopper"]
