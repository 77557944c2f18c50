"""Shipping an order once, however often its event arrives.

Dapr delivers at least once: a redelivery after a crash, or a duplicate, finds the
shipment already recorded and ships nothing more. The shipment is recorded first (a key
only one delivery can create), then order-shipped is published; a delivery that finds
the shipment recorded publishes order-shipped again, with the recorded shipment's id,
because the delivery that recorded it may have died before it published. So a crash
loses neither; subscribers are idempotent, so a second order-shipped changes nothing.
The order-placed event itself is the durable trigger (Redis keeps it until this handler
answers), which is why no outbox is needed here: docs/resiliency.md.
"""

import asyncio
import logging
import time
import uuid

from fastapi import APIRouter, HTTPException, status
from opentelemetry import metrics
from pydantic import BaseModel

from fulfillment.deps import DaprDep, FaultsDep, SettingsDep
from fulfillment.settings import FulfillmentSettings
from orderflow_common.contracts import BODY_ERRORS, FAULT_INJECTED, UNAVAILABLE, IdPath, error
from orderflow_common.events import (
    ORDER_SHIPPED,
    PUBSUB,
    RETRY,
    SUCCESS,
    CloudEvent,
    OrderPlaced,
    OrderShipped,
    SubscriberReply,
    receive,
)
from orderflow_common.faults import burn_cpu
from orderflow_common.sidecar import DaprClient, get_state, publish, save_state
from orderflow_common.telemetry import SECONDS_BUCKETS

log = logging.getLogger(__name__)
router = APIRouter(tags=["shipments"], responses=UNAVAILABLE)
# Exposed as orderflow_fulfillment_work_seconds, with trace-id exemplars.
WORK_SECONDS = metrics.get_meter("fulfillment").create_histogram(
    "orderflow.fulfillment.work",
    "s",
    "Time spent on the CPU work of shipping one order.",
    explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
)


class Shipment(BaseModel):
    shipment_id: str
    order_id: str
    items: dict[str, int]


def _key(order_id: str) -> str:
    return f"shipment-{order_id}"


@router.post("/events/order-placed", responses={**FAULT_INJECTED, **BODY_ERRORS})
async def on_order_placed(
    event: CloudEvent, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> SubscriberReply:
    order = await receive(event, OrderPlaced, faults)
    if isinstance(order, SubscriberReply):
        return order
    shipment = await _ship(dapr, settings, order)
    if shipment is None:
        return RETRY
    shipped = OrderShipped(
        order_id=order.order_id, customer_id=order.customer_id, shipment_id=shipment.shipment_id
    )
    await publish(dapr, PUBSUB, ORDER_SHIPPED, shipped.model_dump(), event_type=ORDER_SHIPPED)
    return SUCCESS


async def _ship(
    dapr: DaprClient, settings: FulfillmentSettings, order: OrderPlaced
) -> Shipment | None:
    """The order's shipment: the one an earlier delivery recorded, or a new one, recorded
    after the work. None only if a recorded shipment vanished (then redeliver)."""
    key = _key(order.order_id)
    recorded = await get_state(dapr, settings.state_store, key)
    if recorded is None:
        started = time.perf_counter()
        await asyncio.to_thread(burn_cpu, settings.work_ms)
        WORK_SECONDS.record(time.perf_counter() - started)
        shipment = Shipment(
            shipment_id=str(uuid.uuid4()), order_id=order.order_id, items=order.items
        )
        if await save_state(
            dapr, settings.state_store, key, shipment.model_dump(), insert_only=True
        ):
            log.info("order shipped", extra={"order_id": order.order_id})
            return shipment
        # A concurrent delivery of the same event recorded its shipment first.
        recorded = await get_state(dapr, settings.state_store, key)
        if recorded is None:
            return None
    log.info("already shipped", extra={"order_id": order.order_id})
    return Shipment.model_validate(recorded.value)


@router.get(
    "/shipments/{order_id}",
    responses={status.HTTP_404_NOT_FOUND: error("no shipment for this order")},
)
async def get_shipment(order_id: IdPath, dapr: DaprDep, settings: SettingsDep) -> Shipment:
    state = await get_state(dapr, settings.state_store, _key(order_id))
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no shipment for this order")
    return Shipment.model_validate(state.value)
