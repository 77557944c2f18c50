"""Stock and reservations.

The stock levels are one small state document guarded by its ETag: every change reads
it, changes it, and writes it back only over the version it read. When another replica
wrote in between, the write is refused and we read again: that loop is optimistic
concurrency, not a retry of a failure, and it is bounded. So concurrent orders never
oversell. Within one replica the changes take turns (a lock): every order changes this
one document, and concurrent read-change-write loops on it would mostly lose their race
and read again, so past a few dozen orders a second the retries would outgrow the work.
The ETag is then only ever lost to another replica.

Each reservation is a key of its own, written once (insert-only), after its stock is
taken. A reservation retried by Dapr's resiliency policy (the answer to the first attempt
was lost) finds it and is answered again instead of taking stock twice; two attempts of
one reservation at once both take stock, and the one whose record comes second gives its
stock back. A release marks the reservation released first, then gives its stock back.
Both orders are chosen so that a crash between the two writes can only leave stock
unsold, never sell it twice.
https://docs.dapr.io/developing-applications/building-blocks/state-management/state-management-overview/#concurrency
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from inventory.catalog import PRICES_CENTS
from inventory.settings import InventorySettings
from orderflow_common.app import DaprDep
from orderflow_common.dapr import DaprClient
from orderflow_common.deps import from_state
from orderflow_common.faults import FaultsDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["stock"])

STOCK_KEY = "stock"
MAX_WRITE_ATTEMPTS = 20


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=100)


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    items: list[Item] = Field(min_length=1, max_length=50)


class Reservation(BaseModel):
    order_id: str
    items: dict[str, int]
    amount_cents: int
    released: bool = False


class Shortage(BaseModel):
    """Not enough stock: a business answer, so a 200. Dapr's circuit breaker counts every
    non-2xx answer as a failure, and a run of sold-out orders must not open it."""

    order_id: str
    reserved: bool = False
    short_skus: list[str]


class StockLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(ge=0, le=1_000_000)


SettingsDep = Annotated[InventorySettings, Depends(from_state("settings", InventorySettings))]
# One change of the stock document at a time in this replica (the module docstring).
TurnsDep = Annotated[asyncio.Lock, Depends(from_state("stock_turns", asyncio.Lock))]
# Changes the stock levels in place; returns the SKUs that are short (then nothing changed).
Change = Callable[[dict[str, int]], list[str]]


def _reservation_key(order_id: str) -> str:
    return f"reservation-{order_id}"


async def _read(dapr: DaprClient, settings: InventorySettings) -> tuple[dict[str, int], str | None]:
    state = await dapr.get_state(settings.state_store, STOCK_KEY)
    if state is None:
        return dict.fromkeys(PRICES_CENTS, settings.initial_stock), None
    return dict(state.value), state.etag


async def _change(
    dapr: DaprClient, settings: InventorySettings, turns: asyncio.Lock, change: Change
) -> tuple[list[str], dict[str, int]]:
    """Apply ``change`` to the stock levels over the version it read, reading again
    after a lost race. Returns the short SKUs it found (nothing written), or none and
    the levels it wrote."""
    async with turns:
        return await _change_in_turn(dapr, settings, change)


async def _change_in_turn(
    dapr: DaprClient, settings: InventorySettings, change: Change
) -> tuple[list[str], dict[str, int]]:
    for _ in range(MAX_WRITE_ATTEMPTS):
        available, etag = await _read(dapr, settings)
        short = change(available)
        if short:
            return short, available
        # The stock levels are kept past the store's time to live (statestores.yaml).
        if etag is None:
            written = await dapr.save_state(
                settings.state_store, STOCK_KEY, available, insert_only=True, keep=True
            )
        else:
            written = await dapr.save_state(
                settings.state_store, STOCK_KEY, available, etag=etag, keep=True
            )
        if written:
            return [], available
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "stock is changing too fast; try again"
    )


def _adding(items: dict[str, int], sign: int) -> Change:
    def change(available: dict[str, int]) -> list[str]:
        short = sorted(sku for sku, qty in items.items() if available[sku] + sign * qty < 0)
        if not short:
            for sku, qty in items.items():
                available[sku] += sign * qty
        return short

    return change


@router.get("/stock")
async def get_stock(dapr: DaprDep, settings: SettingsDep) -> dict[str, int]:
    available, _ = await _read(dapr, settings)
    return available


@router.put("/stock/{sku}")
async def set_stock(
    sku: str, level: StockLevel, dapr: DaprDep, settings: SettingsDep, turns: TurnsDep
) -> dict[str, int]:
    """Set one SKU's stock (for labs and tests): the internal admin side of inventory."""
    if sku not in PRICES_CENTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"unknown_skus": [sku]})

    def setting(available: dict[str, int]) -> list[str]:
        available[sku] = level.quantity
        return []

    _, available = await _change(dapr, settings, turns, setting)
    return available


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=Reservation,
    responses={
        200: {"model": Shortage, "description": "not enough stock"},
        409: {"description": "this order's reservation was released"},
    },
)
async def reserve(
    request: ReservationRequest,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    turns: TurnsDep,
) -> Reservation | JSONResponse:
    await faults.on_request()
    unknown = sorted({item.sku for item in request.items} - PRICES_CENTS.keys())
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"unknown_skus": unknown})
    key = _reservation_key(request.order_id)
    earlier = await dapr.get_state(settings.state_store, key)
    if earlier is not None:
        return _answer_again(Reservation.model_validate(earlier.value))
    wanted: dict[str, int] = {}
    for item in request.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    short, _ = await _change(dapr, settings, turns, _adding(wanted, -1))
    if short:
        shortage = Shortage(order_id=request.order_id, short_skus=short)
        return JSONResponse(shortage.model_dump(), status_code=status.HTTP_200_OK)
    reservation = Reservation(
        order_id=request.order_id,
        items=wanted,
        amount_cents=sum(PRICES_CENTS[sku] * qty for sku, qty in wanted.items()),
    )
    if await dapr.save_state(settings.state_store, key, reservation.model_dump(), insert_only=True):
        log.info("stock reserved", extra={"order_id": request.order_id})
        return reservation
    # Another attempt of this reservation recorded it first: ours is one too many.
    await _change(dapr, settings, turns, _adding(wanted, +1))
    recorded = await dapr.get_state(settings.state_store, key)
    if recorded is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "reservation vanished")
    return _answer_again(Reservation.model_validate(recorded.value))


def _answer_again(reservation: Reservation) -> Reservation:
    if reservation.released:
        raise HTTPException(status.HTTP_409_CONFLICT, "this order's reservation was released")
    return reservation


@router.delete("/reservations/{order_id}")
async def release(
    order_id: str, dapr: DaprDep, settings: SettingsDep, turns: TurnsDep
) -> Reservation:
    key = _reservation_key(order_id)
    state = await dapr.get_state(settings.state_store, key)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reservation for this order")
    reservation = Reservation.model_validate(state.value)
    if reservation.released:
        return reservation
    released = reservation.model_copy(update={"released": True})
    # Marked released over the version read: of two releases at once, one gives back.
    if await dapr.save_state(settings.state_store, key, released.model_dump(), etag=state.etag):
        await _change(dapr, settings, turns, _adding(reservation.items, +1))
        log.info("stock released", extra={"order_id": order_id})
    return released
