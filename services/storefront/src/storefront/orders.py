"""The orders API: validate, charge through payments, announce ``order-placed``."""

import logging
import uuid
from typing import Annotated, cast

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from orderflow_common.app import DaprDep
from orderflow_common.events import ORDER_PLACED, OrderPlaced
from storefront.catalog import PRICES_CENTS
from storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["orders"])


def _settings(request: Request) -> StorefrontSettings:
    return cast(StorefrontSettings, request.app.state.settings)


SettingsDep = Annotated[StorefrontSettings, Depends(_settings)]


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64)
    items: list[OrderItem] = Field(min_length=1, max_length=50)


class OrderAccepted(BaseModel):
    order_id: str
    status: str
    amount_cents: int
    charge_id: str


def _amount_cents(items: list[OrderItem]) -> int:
    unknown = sorted({item.sku for item in items} - PRICES_CENTS.keys())
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"unknown_skus": unknown})
    return sum(PRICES_CENTS[item.sku] * item.quantity for item in items)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
async def place_order(order: OrderRequest, dapr: DaprDep, settings: SettingsDep) -> OrderAccepted:
    order_id = str(uuid.uuid4())
    amount = _amount_cents(order.items)
    event = OrderPlaced(order_id=order_id, customer_id=order.customer_id, amount_cents=amount)
    try:
        charge = await dapr.invoke(settings.payments_app_id, "charges", event.model_dump())
    except httpx.TransportError as exc:
        log.warning("payments unreachable", extra={"order_id": order_id, "error": str(exc)})
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "payments unreachable") from exc
    if charge.status_code != status.HTTP_201_CREATED:
        log.warning(
            "charge failed", extra={"order_id": order_id, "payments_status": charge.status_code}
        )
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, "payments could not charge the order")
    await dapr.publish(
        settings.pubsub_name, settings.orders_topic, event.model_dump(), event_type=ORDER_PLACED
    )
    log.info("order placed", extra={"order_id": order_id})
    return OrderAccepted(
        order_id=order_id,
        status="placed",
        amount_cents=amount,
        charge_id=str(charge.json()["charge_id"]),
    )
