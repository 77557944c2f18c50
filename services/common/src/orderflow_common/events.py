"""The pub/sub contract: the topics, event types and payloads that publishers and
subscribers share, so both sides read one definition.

One topic per event type, named after it: a subscriber receives only the events it
handles (no routing rules, no deliveries it would only acknowledge). Every subscriber
takes a delivery through ``receive``, so all apply the same steps in the same order."""

import logging
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError

from orderflow_common.contracts import Id
from orderflow_common.counts import RecentCounts
from orderflow_common.faults import Faults

log = logging.getLogger(__name__)

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


async def receive(
    event: CloudEvent,
    model: type[E],
    faults: Faults,
    deliveries: RecentCounts | None = None,
) -> E | SubscriberReply:
    """One delivery of ``event``, through the steps every subscriber takes, in this order:
    the event's data as ``model``, or the reply that ends the delivery here.

    1. ``deliveries`` (where a service keeps them) counts it first, so that a delivery
       refused below counts too: a dead letter says how many attempts it took.
    2. A poison event (the ``poison_rate`` flag) is refused with RETRY before anything
       else can pass or fail it, so that every redelivery fails alike until the sidecar
       dead-letters it: exactly 1 + 3 deliveries (docs/resiliency.md).
    3. The request flags (latency, CPU, down, errors) act as on any request; their 503
       or 500 is a failed delivery, which the sidecar redelivers.
    4. Data that does not fit ``model`` is dropped: redelivering it cannot fix it.
    https://docs.dapr.io/reference/api/pubsub_api/#expected-http-response"""
    if deliveries is not None:
        deliveries.add(event.id)
    if faults.is_poison(event.id):
        log.warning("poison event refused", extra={"event_id": event.id})
        return RETRY
    await faults.on_request()
    try:
        return model.model_validate(event.data)
    except ValidationError:
        log.warning("malformed event dropped", extra={"event_id": event.id, "type": event.type})
        return DROP
