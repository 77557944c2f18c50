"""notifications: tells customers about their orders. It subscribes to the ``orders``
topic, and records each notification once per CloudEvent ``id``: Dapr delivers at least
once and does not deduplicate."""
