"""The pub/sub contract: the topics, event types and payloads that publishers and
subscribers share, so both sides read one definition.

One topic per event type, named after it: a subscriber receives only the events it
handles (no routing rules, no deliveries it would only acknowledge)."""

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError

from orderflow_common.contracts import Id

PUBSUB = "pubsub"
DEAD_LETTER_TOPIC = "orders-dead-letter"

# Each is both the CloudEvent type and the topic it is published on.
ORDER_PLACED = "order-placed"
ORDER_SHIPPED = "order-shipped"
CUSTOMER_NOTIFIED = "customer-notified"
ORDER_EVENTS = (ORDER_PLACED, ORDER_SHIPPED, CUSTOMER_NOTIFIED)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # An id that is safe in a state key and a URL (contracts.py): subscribers DROP an
    # event whose id is not, rather than fail on it.
    order_id: Id


class OrderPlaced(Event):
    """The order is paid and its stock reserved: fulfillment ships it."""

    customer_id: Id
    amount_cents: PositiveInt
    items: dict[str, PositiveInt]


class OrderShipped(Event):
    customer_id: Id
    shipment_id: str


class CustomerNotified(Event):
    """The customer was told the order shipped: the order's last step."""


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope Dapr delivers; unknown attributes (traceparent,
    pubsubname, ...) are kept, not rejected.
    https://docs.dapr.io/developing-applications/building-blocks/pubsub/pubsub-cloudevents/"""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    type: str
    source: str
    specversion: Literal["1.0"]
    data: dict[str, object]


class SubscriberReply(BaseModel):
    """What a subscriber tells its sidecar: SUCCESS acknowledges, RETRY asks for the
    resiliency policy to redeliver, DROP discards (counted as dropped in the metrics).
    https://docs.dapr.io/reference/api/pubsub_api/#expected-http-response"""

    status: Literal["SUCCESS", "RETRY", "DROP"]


E = TypeVar("E", bound=Event)

SUCCESS = SubscriberReply(status="SUCCESS")
RETRY = SubscriberReply(status="RETRY")
DROP = SubscriberReply(status="DROP")


def payload(event: CloudEvent, model: type[E]) -> E | None:
    """The event's data as ``model``, or None when it does not fit: redelivering a
    malformed event cannot fix it, so subscribers DROP those."""
    try:
        return model.model_validate(event.data)
    except ValidationError:
        return None
