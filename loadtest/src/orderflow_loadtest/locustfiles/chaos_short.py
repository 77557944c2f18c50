"""The short chaos scenario: `make load SCENARIO=chaos-short` (docs/load.md)."""

from orderflow_loadtest.shapes import ChaosShort
from orderflow_loadtest.shopper import Shopper

__all__ = ["ChaosShort", "Shopper"]
