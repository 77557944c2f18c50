"""notifications: tells customers about their orders. It subscribes to ``order-placed``
and ``order-shipped``, sends one notification per order and event type however often an
event arrives (Dapr delivers at least once and does not deduplicate), announces
``customer-notified`` after the shipping notice, and records dead-lettered events."""
