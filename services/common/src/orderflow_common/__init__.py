"""Shared code for every orderflow service: one place for settings, Dapr calls, logging,
health and the server runner, so that the services themselves hold only their business."""
