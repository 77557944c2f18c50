"""The subscriber route for the ``orders`` topic (declared in deploy/dapr/subscriptions.yaml)
and the read endpoint that shows what was sent."""

import logging
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from orderflow_common.events import ORDER_PLACED, CloudEvent, OrderPlaced, SubscriberReply

log = logging.getLogger(__name__)
router = APIRouter(tags=["notifications"])


class Notification(BaseModel):
    event_id: str
    event_type: str
    order_id: str
    message: str


class SentLog:
    """Notifications sent by this process, keyed by the CloudEvent id that caused them."""

    def __init__(self) -> None:
        self.sent: dict[str, Notification] = {}


def _sent_log(request: Request) -> SentLog:
    return cast(SentLog, request.app.state.sent_log)


SentLogDep = Annotated[SentLog, Depends(_sent_log)]


@router.post("/events/orders")
async def on_order_event(event: CloudEvent, sent_log: SentLogDep) -> SubscriberReply:
    if event.id in sent_log.sent:
        log.info("duplicate delivery ignored", extra={"event_id": event.id})
        return SubscriberReply(status="SUCCESS")
    if event.type != ORDER_PLACED:
        log.warning("unknown event type dropped", extra={"event_type": event.type})
        return SubscriberReply(status="DROP")
    try:
        order = OrderPlaced.model_validate(event.data)
    except ValidationError:
        # Redelivering a malformed event cannot fix it.
        log.warning("malformed event dropped", extra={"event_id": event.id})
        return SubscriberReply(status="DROP")
    sent_log.sent[event.id] = Notification(
        event_id=event.id,
        event_type=event.type,
        order_id=order.order_id,
        message=f"Thanks {order.customer_id}, we received order {order.order_id}.",
    )
    log.info("notification sent", extra={"event_id": event.id, "order_id": order.order_id})
    return SubscriberReply(status="SUCCESS")


@router.get("/notifications")
async def list_notifications(sent_log: SentLogDep) -> list[Notification]:
    return list(sent_log.sent.values())
