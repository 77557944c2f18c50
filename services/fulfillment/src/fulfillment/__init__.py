"""fulfillment: ships paid orders. It takes each ``order-placed`` event, does a
configurable amount of CPU-bound work (what the HorizontalPodAutoscaler scales on),
records the shipment and publishes ``order-shipped``."""
