"""The orders API: reserve stock through inventory, charge through payments, then record
the paid order and its ``order-placed`` event in one outbox transaction.

A business refusal (unknown SKU 422, out of stock 409, card declined 402) is the client's
answer; a failure of ours after Dapr's retries and breakers (503) is recorded on the order
as ``failed`` with its reason. inventory and payments answer their refusals with 2xx
bodies, so that a run of client mistakes never opens a circuit breaker (contracts.py).

Every order that fails after its id exists is compensated before the client hears of it
(docs/resiliency.md, "Compensation"): its reservation is released, and when the charge's
outcome is unknown (payments timed out or failed) its charge is refunded, or voided if it
has not landed yet. Both are keyed by the order id, so asking twice changes nothing, and
an attempt that lands after them takes nothing. An undo that fails is owed and settled
in the background (compensation.py). A failure of the paid order's own write reads the
order back: paid is a success, anything else is compensated.
"""

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal, TypeVar, get_args

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, ValidationError

from orderflow_common.contracts import (
    BODY_ERRORS,
    ID_PATTERN,
    UNAVAILABLE,
    Charge,
    ChargeRequest,
    ErrorBody,
    Id,
    IdPath,
    Items,
    PaymentToken,
    Reservation,
    ReservationRequest,
    error,
    invalid,
)
from orderflow_common.events import ORDER_PLACED, OrderPlaced
from orderflow_common.sidecar import (
    SIDECAR_ERRORS,
    DaprClient,
    get_bulk_state,
    get_state,
    save_state,
    save_with_event,
)
from storefront.compensation import compensate, owe
from storefront.deps import DaprDep, SettingsDep
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
Reason = Literal[
    "out of stock",
    "inventory unavailable",
    "payment declined",
    "payments unavailable",
]
FAILURE_REASONS: tuple[Reason, ...] = get_args(Reason)


@asynccontextmanager
async def _count_from_zero(_: FastAPI) -> AsyncIterator[None]:
    """Every series exists at 0 from the start, so that rate() and increase() count the
    first one too. https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics"""
    ORDERS_PLACED.add(0)
    for reason in FAILURE_REASONS:
        ORDERS_FAILED.add(0, {"reason": reason})
    yield


router = APIRouter(tags=["orders"], lifespan=_count_from_zero, responses=UNAVAILABLE)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Send the same key when you retry: you get the same order back.",
    ),
]


class OrderRequest(BaseModel):
    """Validated here with the very types inventory and payments validate with
    (contracts.py): nothing a client sends can make them refuse storefront's call."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Id
    items: Items
    payment_token: PaymentToken = "tok_visa"  # noqa: S105 - a public test token


class Refusal(BaseModel):
    reason: Reason
    order_id: str
    skus: list[str] = []


class RefusalBody(BaseModel):
    """Why the order failed; the order itself stays readable at GET /orders/{order_id}."""

    detail: Refusal


class _Claim(BaseModel):
    order_id: str
    request_hash: str


class RefusedError(Exception):
    """The order cannot go on; the client gets ``status_code`` and the refusal."""

    def __init__(self, status_code: int, reason: Reason, skus: list[str] | None = None) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason: Reason = reason
        self.skus = skus or []
        self.order_id = ""  # set once the failed order is recorded


def _request_hash(order: OrderRequest) -> str:
    return hashlib.sha256(order.model_dump_json().encode()).hexdigest()


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=Order,
    responses={
        status.HTTP_200_OK: {"model": Order, "description": "the order this key created before"},
        status.HTTP_402_PAYMENT_REQUIRED: {
            "model": RefusalBody,
            "description": "the card was declined",
        },
        status.HTTP_409_CONFLICT: {
            "model": RefusalBody | ErrorBody,
            "description": "not enough stock, or the same key is still in progress",
        },
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": RefusalBody | ErrorBody,
            "description": "inventory, payments or a Dapr building block unavailable",
        },
        **BODY_ERRORS,
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
    try:
        reservation = await _reserve(dapr, settings, order, order_request)
        if idempotency_key is not None:
            claim = _Claim(order_id=order.order_id, request_hash=request_hash)
            if not await save_state(
                dapr,
                settings.state_store,
                _claim_key(idempotency_key),
                claim.model_dump(),
                insert_only=True,
            ):
                # The same key raced us and won: give back our stock, answer with its order.
                await compensate(dapr, settings, order.order_id, refund=False)
                replay = await _replay(dapr, settings, idempotency_key, request_hash)
                if replay is not None:
                    return replay
                raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key is in progress")
        order.amount_cents = reservation.amount_cents
        await _charge(dapr, settings, order, reservation.amount_cents, order_request.payment_token)
    except RefusedError as refused:
        # Only a charge whose outcome we do not know can have taken money.
        await compensate(
            dapr, settings, order.order_id, refund=refused.reason == "payments unavailable"
        )
        await _fail(dapr, settings, order, refused)
        raise
    except SIDECAR_ERRORS:
        # Our own state store failed us before anything was charged.
        await compensate(dapr, settings, order.order_id, refund=False)
        raise
    order.advance("paid")
    event = OrderPlaced(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_cents=order.amount_cents,
        items=order.items,
    )
    # The commit point: once this write is applied the order is paid and shipping.
    # When it fails for us its outcome is unknown, so the order is read back:
    # docs/resiliency.md, "Compensation".
    try:
        await save_with_event(
            dapr,
            settings.state_store,
            order_key(order.order_id),
            order.model_dump(mode="json"),
            event_type=ORDER_PLACED,
            event=event.model_dump(),
        )
    except SIDECAR_ERRORS as failure:
        if not await _settle_commit(dapr, settings, order.order_id, failure):
            raise
    ORDERS_PLACED.add(1)
    log.info("order paid", extra={"order_id": order.order_id})
    return order


@router.get("/orders/{order_id}", responses={status.HTTP_404_NOT_FOUND: error("no such order")})
async def get_order(order_id: IdPath, dapr: DaprDep, settings: SettingsDep) -> Order:
    order = await load_order(dapr, settings, order_id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "order not found")
    return order


async def load_order(dapr: DaprClient, settings: StorefrontSettings, order_id: str) -> Order | None:
    """The order with the steps events recorded beside it (model.py), in one call."""
    keys = [order_key(order_id), *(step_key(order_id, status) for status in EVENT_STEPS)]
    found = await get_bulk_state(dapr, settings.state_store, keys)
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
    claim_state = await get_state(dapr, settings.state_store, _claim_key(idempotency_key))
    if claim_state is None:
        return None
    claim = _Claim.model_validate(claim_state.value)
    if claim.request_hash != request_hash:
        raise RequestValidationError(
            [
                invalid(
                    ("header", "Idempotency-Key"),
                    "this Idempotency-Key was used with a different request",
                    "idempotency_key_reused",
                    idempotency_key,
                )
            ]
        )
    order = await load_order(dapr, settings, claim.order_id)
    if order is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key is in progress")
    return JSONResponse(order.model_dump(mode="json"), status_code=status.HTTP_200_OK)


A = TypeVar("A", Reservation, Charge)


async def _call(
    dapr: DaprClient, app_id: str, method: str, body: BaseModel, answer: type[A]
) -> A | None:
    """``method`` on ``app_id`` and its answer as ``answer``; None when there is none to
    read: unreachable, a failure after Dapr's retries, an open breaker, or a body that does
    not fit (a 2xx is always a business answer: contracts.py)."""
    try:
        response = await dapr.invoke_method(
            app_id,
            method,
            body.model_dump_json(),
            content_type="application/json",
            http_verb="POST",
        )
    except SIDECAR_ERRORS as failure:
        log.warning("invocation failed", extra={"app_id": app_id, "error": str(failure)})
        return None
    if response.status_code not in (status.HTTP_200_OK, status.HTTP_201_CREATED):
        log.warning("invocation failed", extra={"app_id": app_id, "status": response.status_code})
        return None
    try:
        return answer.model_validate_json(response.data)
    except ValidationError:
        log.warning("unreadable answer", extra={"app_id": app_id})
        return None


async def _reserve(
    dapr: DaprClient, settings: StorefrontSettings, order: Order, order_request: OrderRequest
) -> Reservation:
    request = ReservationRequest(order_id=order.order_id, items=order_request.items)
    reservation = await _call(dapr, settings.inventory_app_id, "reservations", request, Reservation)
    if reservation is not None and reservation.status == "reserved":
        return reservation
    if reservation is not None and reservation.status == "unknown sku":
        # The client's mistake, and inventory took nothing: a 422 like any invalid field.
        raise RequestValidationError(
            [
                invalid(("body", "items", index, "sku"), "unknown SKU", "unknown_sku", item.sku)
                for index, item in enumerate(order_request.items)
                if item.sku in reservation.skus
            ]
        )
    if reservation is not None and reservation.status == "out of stock":
        raise RefusedError(status.HTTP_409_CONFLICT, "out of stock", reservation.skus)
    raise RefusedError(status.HTTP_503_SERVICE_UNAVAILABLE, "inventory unavailable")


async def _charge(
    dapr: DaprClient,
    settings: StorefrontSettings,
    order: Order,
    amount_cents: int,
    payment_token: str,
) -> None:
    request = ChargeRequest(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_cents=amount_cents,
        payment_token=payment_token,
    )
    charge = await _call(dapr, settings.payments_app_id, "charges", request, Charge)
    if charge is not None and charge.status == "charged":
        return
    if charge is not None and charge.status == "declined":
        raise RefusedError(status.HTTP_402_PAYMENT_REQUIRED, "payment declined")
    raise RefusedError(status.HTTP_503_SERVICE_UNAVAILABLE, "payments unavailable")


async def _settle_commit(
    dapr: DaprClient, settings: StorefrontSettings, order_id: str, failure: Exception
) -> bool:
    """After the paid order's write failed for us: True when it was applied all the
    same (the order is paid); otherwise the order is compensated, now or as owed, and
    False. A sidecar that answered has ended its own retries; one that did not answer
    within our client's deadline (DAPR_API_TIMEOUT_SECONDS, longer than its retry budget
    for a state call) has too, unless Redis itself holds the write back past both."""
    try:
        stored = await get_state(dapr, settings.state_store, order_key(order_id))
    except SIDECAR_ERRORS:
        # Not even readable: owed, and settled once the order can be read.
        log.warning("order write unknown", extra={"order_id": order_id, "error": str(failure)})
        await owe(dapr, settings, order_id, refund=True)
        return False
    if stored is not None and stored.value.get("status") == "paid":
        log.warning("order write failed for us but applied", extra={"order_id": order_id})
        return True
    log.warning("order not written", extra={"order_id": order_id, "error": str(failure)})
    await compensate(dapr, settings, order_id, refund=True)
    return False


async def _fail(
    dapr: DaprClient, settings: StorefrontSettings, order: Order, refused: RefusedError
) -> None:
    order.advance("failed", refused.reason)
    refused.order_id = order.order_id
    await save_state(
        dapr, settings.state_store, order_key(order.order_id), order.model_dump(mode="json")
    )
    # A handful of fixed reasons (out of stock, payment declined, ... unavailable).
    ORDERS_FAILED.add(1, {"reason": refused.reason})
    log.info("order failed", extra={"order_id": order.order_id, "reason": refused.reason})


async def refused_handler(_: Request, refused: RefusedError) -> JSONResponse:
    """Turn a refusal into the client's answer: the reason, the order, and any SKUs."""
    body = RefusalBody(
        detail=Refusal(reason=refused.reason, order_id=refused.order_id, skus=refused.skus)
    )
    return JSONResponse(body.model_dump(), status_code=refused.status_code)
