"""How an order learns it shipped and that its customer was told: storefront subscribes to
``order-shipped`` and ``customer-notified`` (deploy/dapr/subscriptions.yaml)."""

import logging

from fastapi import APIRouter

from orderflow_common.events import (
    DROP,
    SUCCESS,
    CloudEvent,
    CustomerNotified,
    OrderShipped,
    SubscriberReply,
    receive,
)
from orderflow_common.sidecar import DaprClient, get_state, save_state
from storefront.deps import DaprDep, FaultsDep, SettingsDep
from storefront.model import Status, Step, order_key, step_key
from storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["order progress"], include_in_schema=False)


async def _advance(
    dapr: DaprClient, settings: StorefrontSettings, order_id: str, status: Status
) -> SubscriberReply:
    if await get_state(dapr, settings.state_store, order_key(order_id)) is None:
        log.warning("event for an unknown order dropped", extra={"order_id": order_id})
        return DROP
    # The step's own key, written once: a duplicate event finds it written (model.py).
    step = Step(status=status)
    if await save_state(
        dapr,
        settings.state_store,
        step_key(order_id, status),
        step.model_dump(mode="json"),
        insert_only=True,
    ):
        log.info("order advanced", extra={"order_id": order_id, "status": status})
    return SUCCESS


@router.post("/events/order-shipped")
async def on_order_shipped(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> SubscriberReply:
    shipped = await receive(event, OrderShipped, faults)
    if isinstance(shipped, SubscriberReply):
        return shipped
    return await _advance(dapr, settings, shipped.order_id, "shipped")


@router.post("/events/customer-notified")
async def on_customer_notified(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> SubscriberReply:
    notified = await receive(event, CustomerNotified, faults)
    if isinstance(notified, SubscriberReply):
        return notified
    return await _advance(dapr, settings, notified.order_id, "notified")
