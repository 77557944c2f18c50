"""Charges: take a charge for an order, and list what was charged (for tests and labs)."""

import uuid
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

router = APIRouter(tags=["charges"])


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    amount_cents: PositiveInt


class Charge(BaseModel):
    charge_id: str
    order_id: str
    amount_cents: int
    status: str


class Ledger:
    """The charges this process has taken, in order."""

    def __init__(self) -> None:
        self.charges: list[Charge] = []


def _ledger(request: Request) -> Ledger:
    return cast(Ledger, request.app.state.ledger)


LedgerDep = Annotated[Ledger, Depends(_ledger)]


@router.post("/charges", status_code=status.HTTP_201_CREATED)
async def create_charge(request: ChargeRequest, ledger: LedgerDep) -> Charge:
    charge = Charge(
        charge_id=str(uuid.uuid4()),
        order_id=request.order_id,
        amount_cents=request.amount_cents,
        status="approved",
    )
    ledger.charges.append(charge)
    return charge


@router.get("/charges")
async def list_charges(ledger: LedgerDep) -> list[Charge]:
    return ledger.charges
