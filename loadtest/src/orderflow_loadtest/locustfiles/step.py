"""The step scenario: `make load SCENARIO=step`, or `locust -f` this file (docs/load.md)."""

from orderflow_loadtest.shapes import Step
from orderflow_loadtest.shopper import Shopper

__all__ = ["Shopper", "Step"]
