"""orderflow's Locust scenarios (docs/load.md)."""
