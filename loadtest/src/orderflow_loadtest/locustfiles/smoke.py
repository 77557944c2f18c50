"""The smoke scenario: `make load SCENARIO=smoke`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Smoke
from orderflow_loadtest.shopper import SmokeShopper

__all__ = ["Smoke", "SmokeShopper"]
