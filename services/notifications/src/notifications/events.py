"""The subscriber routes (declared in deploy/dapr/subscriptions.yaml) and the read
endpoints that show what was sent and what was dead-lettered."""

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from opentelemetry import metrics
from pydantic import BaseModel

from notifications.deps import DaprDep, DeliveriesDep, FaultsDep, SettingsDep
from notifications.settings import NotificationsSettings
from orderflow_common.contracts import (
    BODY_ERRORS,
    FAULT_INJECTED,
    ID_MAX,
    ID_PATTERN,
    UNAVAILABLE,
    IdPath,
)
from orderflow_common.events import (
    CUSTOMER_NOTIFIED,
    ORDER_EVENTS,
    ORDER_PLACED,
    ORDER_SHIPPED,
    PUBSUB,
    SUCCESS,
    CloudEvent,
    CustomerNotified,
    OrderPlaced,
    OrderShipped,
    SubscriberReply,
    receive,
)
from orderflow_common.sidecar import DaprClient, get_bulk_state, publish, save_state

log = logging.getLogger(__name__)
# Exposed as orderflow_notifications_sent_total{event_type} and
# orderflow_dead_letters_total{event_type}; event types are the few in events.ORDER_EVENTS.
_meter = metrics.get_meter("notifications")
NOTIFICATIONS_SENT = _meter.create_counter(
    "orderflow.notifications.sent", "{notification}", "Notifications sent, by event type."
)
DEAD_LETTERS = _meter.create_counter(
    "orderflow.dead_letters", "{event}", "Events that reached the dead-letter topic, by type."
)


@asynccontextmanager
async def _count_from_zero(_: FastAPI) -> AsyncIterator[None]:
    """Every series exists at 0 from the start, so that rate() and increase() count the
    first one too. https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics"""
    for event_type in (ORDER_PLACED, ORDER_SHIPPED):
        NOTIFICATIONS_SENT.add(0, {"event_type": event_type})
    for event_type in ORDER_EVENTS:
        DEAD_LETTERS.add(0, {"event_type": event_type})
    yield


router = APIRouter(tags=["notifications"], lifespan=_count_from_zero, responses=UNAVAILABLE)

MESSAGES = {
    ORDER_PLACED: "Thanks {customer}, we received order {order}.",
    ORDER_SHIPPED: "Good news {customer}: order {order} is on its way.",
}


class Notification(BaseModel):
    event_id: str
    event_type: str
    order_id: str
    message: str


class DeadLetter(BaseModel):
    event_id: str
    event_type: str
    order_id: str
    attempts: int


def _key(order_id: str, event_type: str) -> str:
    return f"notification-{order_id}-{event_type}"


def _dead_letter_key(order_id: str, event_type: str) -> str:
    return f"dead-letter-{order_id}-{event_type}"


async def _notify(
    dapr: DaprClient,
    settings: NotificationsSettings,
    event_id: str,
    event_type: str,
    order: OrderPlaced | OrderShipped,
) -> SubscriberReply:
    # The topic's event type (one topic per type), not the envelope's, which any
    # publisher can set to anything.
    notification = Notification(
        event_id=event_id,
        event_type=event_type,
        order_id=order.order_id,
        message=MESSAGES[event_type].format(customer=order.customer_id, order=order.order_id),
    )
    # One notification per order and event type: a redelivery (same CloudEvent id) and a
    # duplicate event (another id) both find it written and send nothing more.
    key = _key(order.order_id, event_type)
    if await save_state(
        dapr, settings.state_store, key, notification.model_dump(), insert_only=True
    ):
        NOTIFICATIONS_SENT.add(1, {"event_type": event_type})
        log.info("notification sent", extra={"order_id": order.order_id, "type": event_type})
    if event_type == ORDER_SHIPPED:
        # Also on a redelivery: the first attempt may have failed right here.
        await publish(
            dapr,
            PUBSUB,
            CUSTOMER_NOTIFIED,
            CustomerNotified(order_id=order.order_id).model_dump(),
            event_type=CUSTOMER_NOTIFIED,
        )
    return SUCCESS


@router.post("/events/order-placed", responses={**FAULT_INJECTED, **BODY_ERRORS})
async def on_order_placed(
    event: CloudEvent,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    deliveries: DeliveriesDep,
) -> SubscriberReply:
    order = await receive(event, OrderPlaced, faults, deliveries)
    if isinstance(order, SubscriberReply):
        return order
    return await _notify(dapr, settings, event.id, ORDER_PLACED, order)


@router.post("/events/order-shipped", responses={**FAULT_INJECTED, **BODY_ERRORS})
async def on_order_shipped(
    event: CloudEvent,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    deliveries: DeliveriesDep,
) -> SubscriberReply:
    order = await receive(event, OrderShipped, faults, deliveries)
    if isinstance(order, SubscriberReply):
        return order
    return await _notify(dapr, settings, event.id, ORDER_SHIPPED, order)


@router.post("/events/dead-letter", responses=BODY_ERRORS)
async def on_dead_letter(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, deliveries: DeliveriesDep
) -> SubscriberReply:
    # Not through receive: no fault flag acts here (a poison_rate would refuse the very
    # dead letters it causes). Whatever reached the topic is recorded, under a key built
    # from safe parts only: an order id that is not one, or a type that is not ours, is
    # recorded as such.
    order_id = str(event.data.get("order_id", ""))
    if not re.fullmatch(ID_PATTERN, order_id) or len(order_id) > ID_MAX:
        order_id = "unknown"
    # Only our own event types count by name: anything else on the topic is "other".
    event_type = event.type if event.type in ORDER_EVENTS else "other"
    dead = DeadLetter(
        event_id=event.id,
        event_type=event_type,
        order_id=order_id,
        attempts=deliveries.get(event.id),
    )
    await save_state(
        dapr, settings.state_store, _dead_letter_key(order_id, event_type), dead.model_dump()
    )
    DEAD_LETTERS.add(1, {"event_type": event_type})
    log.error("event dead-lettered", extra=dead.model_dump())
    return SUCCESS


@router.get("/notifications/{order_id}")
async def list_notifications(
    order_id: IdPath, dapr: DaprDep, settings: SettingsDep
) -> list[Notification]:
    keys = [_key(order_id, event_type) for event_type in MESSAGES]
    found = await get_bulk_state(dapr, settings.state_store, keys)
    return [Notification.model_validate(found[key].value) for key in keys if key in found]


@router.get("/dead-letters/{order_id}")
async def list_dead_letters(
    order_id: IdPath, dapr: DaprDep, settings: SettingsDep
) -> list[DeadLetter]:
    keys = [_dead_letter_key(order_id, event_type) for event_type in ORDER_EVENTS]
    found = await get_bulk_state(dapr, settings.state_store, keys)
    return [DeadLetter.model_validate(found[key].value) for key in keys if key in found]
