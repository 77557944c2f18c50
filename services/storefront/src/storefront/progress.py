"""How an order learns it shipped and that its customer was told: storefront subscribes to
``order-shipped`` and ``customer-notified`` (deploy/dapr/subscriptions.yaml)."""

import logging

from fastapi import APIRouter

from orderflow_common.app import DaprDep
from orderflow_common.events import (
    DROP,
    RETRY,
    SUCCESS,
    CloudEvent,
    CustomerNotified,
    OrderShipped,
    SubscriberReply,
    payload,
)
from orderflow_common.faults import FaultsDep
from storefront.model import Order, Status, order_key
from storefront.orders import SettingsDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["order progress"], include_in_schema=False)


async def _advance(
    event: CloudEvent,
    *,
    model: type[OrderShipped] | type[CustomerNotified],
    status: Status,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
) -> SubscriberReply:
    if faults.is_poison(event.id):
        return RETRY
    data = payload(event, model)
    if data is None:
        log.warning("malformed event dropped", extra={"event_id": event.id})
        return DROP
    state = await dapr.get_state(settings.state_store, order_key(data.order_id))
    if state is None:
        log.warning("event for an unknown order dropped", extra={"order_id": data.order_id})
        return DROP
    order = Order.model_validate(state.value)
    if not order.advance(status):
        return SUCCESS
    key = order_key(order.order_id)
    if not await dapr.save_state(
        settings.state_store, key, order.model_dump(mode="json"), etag=state.etag
    ):
        # Another event for this order was written in between: have it delivered again.
        return RETRY
    log.info("order advanced", extra={"order_id": order.order_id, "status": order.status})
    return SUCCESS


@router.post("/events/order-shipped")
async def on_order_shipped(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> SubscriberReply:
    return await _advance(
        event, model=OrderShipped, status="shipped", dapr=dapr, settings=settings, faults=faults
    )


@router.post("/events/customer-notified")
async def on_customer_notified(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> SubscriberReply:
    return await _advance(
        event,
        model=CustomerNotified,
        status="notified",
        dapr=dapr,
        settings=settings,
        faults=faults,
    )
