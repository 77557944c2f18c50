"""Charges: one per order, whatever the number of attempts.

A declined card is a business answer (402) that no retry changes; our own failure is a
5xx, which Dapr's resiliency policy retries. A retried charge whose first attempt did
succeed finds that charge and answers it again, so an order is never charged twice.
"""

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from orderflow_common.app import DaprDep
from orderflow_common.counts import RecentCounts
from orderflow_common.deps import from_state
from orderflow_common.faults import FaultsDep
from payments.settings import PaymentsSettings

log = logging.getLogger(__name__)
# Exposed as orderflow_payments_declined_total and orderflow_payments_failed_total.
_meter = metrics.get_meter("payments")
PAYMENTS_DECLINED = _meter.create_counter(
    "orderflow.payments.declined", "{charge}", "Charges declined: a business answer (402)."
)
PAYMENTS_FAILED = _meter.create_counter(
    "orderflow.payments.failed", "{charge}", "Charge attempts that failed on our side (5xx)."
)


@asynccontextmanager
async def _count_from_zero(_: FastAPI) -> AsyncIterator[None]:
    """Every series exists at 0 from the start, so that rate() and increase() count the
    first one too. https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics"""
    PAYMENTS_DECLINED.add(0)
    PAYMENTS_FAILED.add(0)
    yield


router = APIRouter(tags=["charges"], lifespan=_count_from_zero)

# Test tokens in the manner of card processors: this one is always declined.
DECLINED_TOKEN = "tok_declined"  # noqa: S105 - a public test token, not a secret


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    amount_cents: PositiveInt
    payment_token: str = Field(min_length=1, max_length=64)


class Charge(BaseModel):
    charge_id: str
    order_id: str
    amount_cents: int


# How many charge attempts reached this process, per recent order: what a resiliency
# demo or test counts.
AttemptsDep = Annotated[RecentCounts, Depends(from_state("attempts", RecentCounts))]
SettingsDep = Annotated[PaymentsSettings, Depends(from_state("settings", PaymentsSettings))]


def _key(order_id: str) -> str:
    return f"charge-{order_id}"


@router.post(
    "/charges",
    status_code=status.HTTP_201_CREATED,
    response_model=Charge,
    responses={402: {"description": "the card was declined"}},
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
    except HTTPException as error:
        if error.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
            PAYMENTS_FAILED.add(1)
        raise
    if request.payment_token == DECLINED_TOKEN:
        PAYMENTS_DECLINED.add(1)
        log.info("card declined", extra={"order_id": request.order_id})
        raise HTTPException(status.HTTP_402_PAYMENT_REQUIRED, "card declined")
    charge = Charge(
        charge_id=str(uuid.uuid4()), order_id=request.order_id, amount_cents=request.amount_cents
    )
    key = _key(request.order_id)
    if await dapr.save_state(settings.state_store, key, charge.model_dump(), insert_only=True):
        log.info("charged", extra={"order_id": request.order_id, "attempt": attempt})
        return charge
    earlier = await dapr.get_state(settings.state_store, key)
    if earlier is None:
        PAYMENTS_FAILED.add(1)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "charge vanished")
    return JSONResponse(earlier.value, status_code=status.HTTP_200_OK)


@router.get("/charges/{order_id}")
async def get_charge(order_id: str, dapr: DaprDep, settings: SettingsDep) -> Charge:
    state = await dapr.get_state(settings.state_store, _key(order_id))
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no charge for this order")
    return Charge.model_validate(state.value)


@router.get("/attempts/{order_id}")
async def get_attempts(order_id: str, attempts: AttemptsDep) -> dict[str, int]:
    """Charge attempts for this order that reached this replica."""
    return {"attempts": attempts.get(order_id)}
