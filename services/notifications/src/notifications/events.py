"""The subscriber routes (declared in deploy/dapr/subscriptions.yaml) and the read
endpoints that show what was sent and what was dead-lettered."""

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from opentelemetry import metrics
from pydantic import BaseModel

from notifications.settings import NotificationsSettings
from orderflow_common.app import DaprDep
from orderflow_common.contracts import (
    BODY_ERRORS,
    FAULT_INJECTED,
    ID_MAX,
    ID_PATTERN,
    UNAVAILABLE,
    IdPath,
)
from orderflow_common.counts import RecentCounts
from orderflow_common.deps import from_state
from orderflow_common.events import (
    CUSTOMER_NOTIFIED,
    DROP,
    ORDER_EVENTS,
    ORDER_PLACED,
    ORDER_SHIPPED,
    PUBSUB,
    RETRY,
    SUCCESS,
    CloudEvent,
    CustomerNotified,
    OrderPlaced,
    OrderShipped,
    SubscriberReply,
    payload,
)
from orderflow_common.faults import Faults, FaultsDep
from orderflow_common.sidecar import get_bulk_state, publish, save_state

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


SettingsDep = Annotated[
    NotificationsSettings, Depends(from_state("settings", NotificationsSettings))
]
# Deliveries of each recent event to this replica, so a dead letter can say how many
# attempts it took: what the resiliency demo and tests read.
DeliveriesDep = Annotated[RecentCounts, Depends(from_state("deliveries", RecentCounts))]


def _key(order_id: str, event_type: str) -> str:
    return f"notification-{order_id}-{event_type}"


def _dead_letter_key(order_id: str, event_type: str) -> str:
    return f"dead-letter-{order_id}-{event_type}"


async def _notify(
    event: CloudEvent,
    *,
    event_type: str,
    model: type[OrderPlaced] | type[OrderShipped],
    dapr: DaprDep,
    settings: NotificationsSettings,
    faults: Faults,
    deliveries: RecentCounts,
) -> SubscriberReply:
    deliveries.add(event.id)
    if faults.is_poison(event.id):
        log.warning("poison event refused", extra={"event_id": event.id})
        return RETRY
    await faults.on_request()
    order = payload(event, model)
    if order is None:
        log.warning("malformed event dropped", extra={"event_id": event.id})
        return DROP
    # The topic's event type (one topic per type), not the envelope's, which any
    # publisher can set to anything.
    notification = Notification(
        event_id=event.id,
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
    return await _notify(
        event,
        event_type=ORDER_PLACED,
        model=OrderPlaced,
        dapr=dapr,
        settings=settings,
        faults=faults,
        deliveries=deliveries,
    )


@router.post("/events/order-shipped", responses={**FAULT_INJECTED, **BODY_ERRORS})
async def on_order_shipped(
    event: CloudEvent,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    deliveries: DeliveriesDep,
) -> SubscriberReply:
    return await _notify(
        event,
        event_type=ORDER_SHIPPED,
        model=OrderShipped,
        dapr=dapr,
        settings=settings,
        faults=faults,
        deliveries=deliveries,
    )


@router.post("/events/dead-letter", responses=BODY_ERRORS)
async def on_dead_letter(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, deliveries: DeliveriesDep
) -> SubscriberReply:
    # Whatever reached the topic is recorded, under a key built from safe parts only: an
    # order id that is not one, or a type that is not ours, is recorded as such.
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
