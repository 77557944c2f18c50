"""fulfillment: ships paid orders. It takes each ``order-placed`` event, does a
configurable amount of CPU-bound work (what the HorizontalPodAutoscaler scales on), and
records the shipment and its ``order-shipped`` event in one outbox transaction."""
