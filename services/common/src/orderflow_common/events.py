"""The pub/sub contract: event types and their payloads, shared by publishers and
subscribers so that both sides read one definition."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

ORDER_PLACED = "order-placed"


class OrderPlaced(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str
    customer_id: str
    amount_cents: PositiveInt


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope Dapr delivers; unknown attributes (traceparent,
    pubsubname, ...) are kept, not rejected. https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-cloudevents/"""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    type: str
    source: str
    specversion: Literal["1.0"]
    data: dict[str, object]


class SubscriberReply(BaseModel):
    """What a subscriber tells its sidecar: SUCCESS acknowledges, RETRY asks for the
    resiliency policy to redeliver, DROP discards (it counts as dropped in the metrics).
    https://docs.dapr.io/reference/api/pubsub_api/#expected-http-response"""

    status: Literal["SUCCESS", "RETRY", "DROP"]
