"""The orders API: reserve stock through inventory, charge through payments, then record
the paid order and its ``order-placed`` event in one outbox transaction.

A business refusal (out of stock 409, card declined 402) is the client's answer; a
failure of ours after Dapr's retries and breakers (503) is recorded on the order as
``failed`` with its reason. Either way a reservation that will not be paid is released.
"""

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field

from orderflow_common.app import DaprDep
from orderflow_common.dapr import DaprClient
from orderflow_common.deps import from_state
from orderflow_common.events import ORDER_PLACED, OrderPlaced
from storefront.model import EVENT_STEPS, Order, Step, order_key, step_key
from storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)
# Business metrics, exposed as orderflow_orders_placed_total and
# orderflow_orders_failed_total{reason} (orderflow_common.telemetry).
_meter = metrics.get_meter("storefront")
ORDERS_PLACED = _meter.create_counter(
    "orderflow.orders.placed", "{order}", "Orders paid and announced on the orders topic."
)
ORDERS_FAILED = _meter.create_counter(
    "orderflow.orders.failed", "{order}", "Orders that ended failed, by reason."
)
# The reasons an order fails for (the RefusedErrors below): the label's only values.
FAILURE_REASONS = (
    "out of stock",
    "inventory unavailable",
    "payment declined",
    "payments unavailable",
)


@asynccontextmanager
async def _count_from_zero(_: FastAPI) -> AsyncIterator[None]:
    """Every series exists at 0 from the start, so that rate() and increase() count the
    first one too. https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics"""
    ORDERS_PLACED.add(0)
    for reason in FAILURE_REASONS:
        ORDERS_FAILED.add(0, {"reason": reason})
    yield


router = APIRouter(tags=["orders"], lifespan=_count_from_zero)


SettingsDep = Annotated[StorefrontSettings, Depends(from_state("settings", StorefrontSettings))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Send the same key when you retry: you get the same order back.",
    ),
]


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64)
    items: list[OrderItem] = Field(min_length=1, max_length=50)
    payment_token: str = Field(default="tok_visa", min_length=1, max_length=64)


class _Claim(BaseModel):
    order_id: str
    request_hash: str


class RefusedError(Exception):
    """The order cannot go on; the client gets ``status_code`` and ``detail``."""

    def __init__(self, status_code: int, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.detail = detail


def _request_hash(order: OrderRequest) -> str:
    return hashlib.sha256(order.model_dump_json().encode()).hexdigest()


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=Order,
    responses={
        200: {"description": "the order this Idempotency-Key created before"},
        402: {"description": "the card was declined"},
        409: {"description": "not enough stock, or the same key is still in progress"},
        503: {"description": "inventory or payments unavailable"},
    },
)
async def place_order(
    order_request: OrderRequest,
    dapr: DaprDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Order | JSONResponse:
    request_hash = _request_hash(order_request)
    if idempotency_key is not None:
        replay = await _replay(dapr, settings, idempotency_key, request_hash)
        if replay is not None:
            return replay
    order = Order(
        order_id=str(uuid.uuid4()),
        customer_id=order_request.customer_id,
        items={},
        status="placed",
        history=[Step(status="placed")],
    )
    for item in order_request.items:
        order.items[item.sku] = order.items.get(item.sku, 0) + item.quantity
    reservation = await _reserve(dapr, settings, order, order_request)
    if idempotency_key is not None:
        claim = _Claim(order_id=order.order_id, request_hash=request_hash)
        if not await dapr.save_state(
            settings.state_store, _claim_key(idempotency_key), claim.model_dump(), insert_only=True
        ):
            # The same key raced us and won: give back our stock and answer with its order.
            await _release(dapr, settings, order.order_id)
            replay = await _replay(dapr, settings, idempotency_key, request_hash)
            if replay is not None:
                return replay
            raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key is in progress")
    order.amount_cents = int(reservation["amount_cents"])
    try:
        await _charge(dapr, settings, order, order_request.payment_token)
    except RefusedError as refused:
        await _release(dapr, settings, order.order_id)
        await _fail(dapr, settings, order, refused)
        raise
    order.advance("paid")
    event = OrderPlaced(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_cents=order.amount_cents,
        items=order.items,
    )
    await dapr.save_with_event(
        settings.state_store,
        order_key(order.order_id),
        order.model_dump(mode="json"),
        event_type=ORDER_PLACED,
        event=event.model_dump(),
    )
    ORDERS_PLACED.add(1)
    log.info("order paid", extra={"order_id": order.order_id})
    return order


@router.get("/orders/{order_id}")
async def get_order(order_id: str, dapr: DaprDep, settings: SettingsDep) -> Order:
    order = await load_order(dapr, settings, order_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    return order


async def load_order(dapr: DaprClient, settings: StorefrontSettings, order_id: str) -> Order | None:
    """The order with the steps events recorded beside it (model.py), in one call."""
    keys = [order_key(order_id), *(step_key(order_id, status) for status in EVENT_STEPS)]
    found = await dapr.get_bulk_state(settings.state_store, keys)
    stored = found.get(order_key(order_id))
    if stored is None:
        return None
    order = Order.model_validate(stored.value)
    for key in keys[1:]:
        if key in found:
            order.record(Step.model_validate(found[key].value))
    return order


def _claim_key(idempotency_key: str) -> str:
    return f"idempotency-{idempotency_key}"


async def _replay(
    dapr: DaprClient, settings: StorefrontSettings, idempotency_key: str, request_hash: str
) -> JSONResponse | None:
    """The answer for a key seen before, or None for a new key."""
    claim_state = await dapr.get_state(settings.state_store, _claim_key(idempotency_key))
    if claim_state is None:
        return None
    claim = _Claim.model_validate(claim_state.value)
    if claim.request_hash != request_hash:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "this Idempotency-Key was used with a different request",
        )
    order = await load_order(dapr, settings, claim.order_id)
    if order is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key is in progress")
    return JSONResponse(order.model_dump(mode="json"), status_code=status.HTTP_200_OK)


async def _reserve(
    dapr: DaprClient, settings: StorefrontSettings, order: Order, order_request: OrderRequest
) -> dict[str, Any]:
    body = {
        "order_id": order.order_id,
        "items": [item.model_dump() for item in order_request.items],
    }
    try:
        response = await dapr.invoke(settings.inventory_app_id, "reservations", body)
    except httpx.TransportError as error:
        response = None
        log.warning("inventory unreachable", extra={"error": str(error)})
    if response is not None and response.status_code == status.HTTP_201_CREATED:
        return cast(dict[str, Any], response.json())
    if response is not None and response.status_code == status.HTTP_422_UNPROCESSABLE_CONTENT:
        # Unknown SKUs: the client's mistake, and nothing was written anywhere.
        raise HTTPException(response.status_code, response.json().get("detail"))
    if response is not None and response.status_code == status.HTTP_200_OK:
        skus = response.json().get("short_skus", [])
        refused = RefusedError(status.HTTP_409_CONFLICT, "out of stock", skus=skus)
    else:
        code = None if response is None else response.status_code
        log.warning("reservation failed", extra={"inventory_status": code})
        refused = RefusedError(status.HTTP_503_SERVICE_UNAVAILABLE, "inventory unavailable")
    await _fail(dapr, settings, order, refused)
    raise refused


async def _charge(
    dapr: DaprClient, settings: StorefrontSettings, order: Order, payment_token: str
) -> None:
    body = {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "amount_cents": order.amount_cents,
        "payment_token": payment_token,
    }
    try:
        response = await dapr.invoke(settings.payments_app_id, "charges", body)
    except httpx.TransportError as error:
        log.warning("payments unreachable", extra={"error": str(error)})
        raise RefusedError(status.HTTP_503_SERVICE_UNAVAILABLE, "payments unavailable") from error
    if response.status_code in (200, 201):
        return
    if response.status_code == status.HTTP_402_PAYMENT_REQUIRED:
        raise RefusedError(status.HTTP_402_PAYMENT_REQUIRED, "payment declined")
    log.warning("charge failed", extra={"payments_status": response.status_code})
    raise RefusedError(status.HTTP_503_SERVICE_UNAVAILABLE, "payments unavailable")


async def _release(dapr: DaprClient, settings: StorefrontSettings, order_id: str) -> None:
    try:
        response = await dapr.invoke(
            settings.inventory_app_id, f"reservations/{order_id}", http_method="DELETE"
        )
    except httpx.TransportError:
        log.exception("reservation not released", extra={"order_id": order_id})
        return
    if response.status_code != status.HTTP_200_OK:
        log.error(
            "reservation not released",
            extra={"order_id": order_id, "inventory_status": response.status_code},
        )


async def _fail(
    dapr: DaprClient, settings: StorefrontSettings, order: Order, refused: RefusedError
) -> None:
    order.advance("failed", refused.reason)
    refused.detail["order_id"] = order.order_id
    await dapr.save_state(
        settings.state_store, order_key(order.order_id), order.model_dump(mode="json")
    )
    # A handful of fixed reasons (out of stock, payment declined, ... unavailable).
    ORDERS_FAILED.add(1, {"reason": refused.reason})
    log.info("order failed", extra={"order_id": order.order_id, "reason": refused.reason})


async def refused_handler(_: Request, refused: RefusedError) -> JSONResponse:
    """Turn a refusal into the client's answer: the reason, the order, and any details."""
    return JSONResponse(
        {"detail": {"reason": refused.reason, **refused.detail}}, status_code=refused.status_code
    )
