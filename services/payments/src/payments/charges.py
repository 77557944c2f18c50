"""Charges: one per order, whatever the number of attempts, and refunds.

A declined card is a business answer that no retry changes: a 200 that says so, since
Dapr's circuit breaker counts every non-2xx answer as a failure (contracts.py); our own
failure is a 5xx, which Dapr's resiliency policy retries. A retried charge whose first
attempt did succeed finds that charge and answers it again, so an order is never charged
twice.

storefront refunds the charge of an order it gives up (docs/resiliency.md,
"Compensation"), keyed by the order id, so a refund asked again changes nothing. A refund
that comes before any charge landed (an attempt slower than storefront's timeout is still
on its way) records the order's charge as voided: the attempt, when it lands, loses its
insert-only write to that record and charges nothing.
"""

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from opentelemetry import metrics

from orderflow_common.contracts import (
    BODY_ERRORS,
    FAULT_INJECTED,
    UNAVAILABLE,
    Charge,
    ChargeRequest,
    IdPath,
    created_nothing,
    error,
)
from orderflow_common.sidecar import get_state, save_state
from payments.deps import AttemptsDep, DaprDep, FaultsDep, SettingsDep

log = logging.getLogger(__name__)
# Exposed as orderflow_payments_{declined,failed,refunded}_total.
_meter = metrics.get_meter("payments")
PAYMENTS_DECLINED = _meter.create_counter(
    "orderflow.payments.declined", "{charge}", "Charges declined: a business answer."
)
PAYMENTS_FAILED = _meter.create_counter(
    "orderflow.payments.failed", "{charge}", "Charge attempts that failed on our side (5xx)."
)
PAYMENTS_REFUNDED = _meter.create_counter(
    "orderflow.payments.refunded", "{charge}", "Charges refunded: orders given up after."
)


@asynccontextmanager
async def _count_from_zero(_: FastAPI) -> AsyncIterator[None]:
    """Every series exists at 0 from the start, so that rate() and increase() count the
    first one too. https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics"""
    PAYMENTS_DECLINED.add(0)
    PAYMENTS_FAILED.add(0)
    PAYMENTS_REFUNDED.add(0)
    yield


router = APIRouter(tags=["charges"], lifespan=_count_from_zero, responses=UNAVAILABLE)

# Test tokens in the manner of card processors: this one is always declined.
DECLINED_TOKEN = "tok_declined"  # noqa: S105 - a public test token, not a secret
MAX_WRITE_ATTEMPTS = 20


def _key(order_id: str) -> str:
    return f"charge-{order_id}"


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    response_model=Charge,
    responses={
        status.HTTP_200_OK: {
            "model": Charge,
            "description": "the order's charge made before (a retried attempt), refunded or"
            " voided (the order was given up), or the card declined: nothing new charged",
        },
        **FAULT_INJECTED,
        **BODY_ERRORS,
    },
)
async def create_charge(
    request: ChargeRequest,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    attempts: AttemptsDep,
) -> Charge | JSONResponse:
    attempt = attempts.add(request.order_id)
    try:
        await faults.on_request(attempt)
    except HTTPException as failure:
        if failure.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
            PAYMENTS_FAILED.add(1)
        raise
    if request.payment_token == DECLINED_TOKEN:
        PAYMENTS_DECLINED.add(1)
        log.info("card declined", extra={"order_id": request.order_id})
        declined = Charge(
            order_id=request.order_id, status="declined", charge_id=None, amount_cents=0
        )
        return created_nothing(declined)
    charge = Charge(
        order_id=request.order_id,
        status="charged",
        charge_id=str(uuid.uuid4()),
        amount_cents=request.amount_cents,
    )
    key = _key(request.order_id)
    if await save_state(dapr, settings.state_store, key, charge.model_dump(), insert_only=True):
        log.info("charged", extra={"order_id": request.order_id, "attempt": attempt})
        return charge
    earlier = await get_state(dapr, settings.state_store, key)
    if earlier is None:
        PAYMENTS_FAILED.add(1)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "charge vanished")
    return created_nothing(Charge.model_validate(earlier.value))


@router.get(
    "/charges/{order_id}",
    responses={status.HTTP_404_NOT_FOUND: error("no charge for this order")},
)
async def get_charge(order_id: IdPath, dapr: DaprDep, settings: SettingsDep) -> Charge:
    state = await get_state(dapr, settings.state_store, _key(order_id))
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no charge for this order")
    return Charge.model_validate(state.value)


@router.delete("/charges/{order_id}")
async def refund(order_id: IdPath, dapr: DaprDep, settings: SettingsDep) -> Charge:
    """Refund the order's charge, or void it if none has landed yet: once, however often
    it is asked."""
    key = _key(order_id)
    for _ in range(MAX_WRITE_ATTEMPTS):
        state = await get_state(dapr, settings.state_store, key)
        if state is None:
            void = Charge(order_id=order_id, status="voided", charge_id=None, amount_cents=0)
            if await save_state(
                dapr, settings.state_store, key, void.model_dump(), insert_only=True
            ):
                log.info("charge voided before it landed", extra={"order_id": order_id})
                return void
            continue  # a charge landed in between: refund that one
        charge = Charge.model_validate(state.value)
        if charge.status != "charged":
            return charge
        refunded = charge.model_copy(update={"status": "refunded"})
        if await save_state(
            dapr, settings.state_store, key, refunded.model_dump(), etag=state.etag
        ):
            PAYMENTS_REFUNDED.add(1)
            log.info("charge refunded", extra={"order_id": order_id})
            return refunded
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "the charge is changing too fast; try again"
    )


@router.get("/attempts/{order_id}")
async def get_attempts(order_id: IdPath, attempts: AttemptsDep) -> dict[str, int]:
    """Charge attempts for this order that reached this replica."""
    return {"attempts": attempts.get(order_id)}
