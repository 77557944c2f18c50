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
from orderflow_common.sidecar import get_state, save_state
from storefront.model import Status, Step, order_key, step_key
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
    if await get_state(dapr, settings.state_store, order_key(data.order_id)) is None:
        log.warning("event for an unknown order dropped", extra={"order_id": data.order_id})
        return DROP
    # The step's own key, written once: a duplicate event finds it written (model.py).
    step = Step(status=status)
    if await save_state(
        dapr,
        settings.state_store,
        step_key(data.order_id, status),
        step.model_dump(mode="json"),
        insert_only=True,
    ):
        log.info("order advanced", extra={"order_id": data.order_id, "status": status})
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
