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
A release that finds no reservation records the order released with nothing held: the
reservation's attempt may still be on its way (slower than storefront's timeout), and
when it lands it finds that record, or loses its insert-only write to it, and gives its
stock back. So a given-up order never holds stock, whatever order the calls land in.
Both orders are chosen so that a crash between the two writes can only leave stock
unsold, never sell it twice.
https://docs.dapr.io/developing-applications/building-blocks/state-management/state-management-overview/#concurrency
"""

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from inventory.catalog import PRICES_CENTS
from inventory.deps import DaprDep, FaultsDep, SettingsDep, TurnsDep
from inventory.settings import InventorySettings
from orderflow_common.contracts import (
    BODY_ERRORS,
    FAULT_INJECTED,
    UNAVAILABLE,
    IdPath,
    Reservation,
    ReservationRequest,
    SkuPath,
    created_nothing,
    error,
)
from orderflow_common.sidecar import DaprClient, get_state, save_state

log = logging.getLogger(__name__)
router = APIRouter(tags=["stock"], responses=UNAVAILABLE)

STOCK_KEY = "stock"
MAX_WRITE_ATTEMPTS = 20


class StockLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(ge=0, le=1_000_000)


# Changes the stock levels in place; returns the SKUs that are short (then nothing changed).
Change = Callable[[dict[str, int]], list[str]]


def _reservation_key(order_id: str) -> str:
    return f"reservation-{order_id}"


async def _read(dapr: DaprClient, settings: InventorySettings) -> tuple[dict[str, int], str | None]:
    state = await get_state(dapr, settings.state_store, STOCK_KEY)
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
            written = await save_state(
                dapr, settings.state_store, STOCK_KEY, available, insert_only=True, keep=True
            )
        else:
            written = await save_state(
                dapr, settings.state_store, STOCK_KEY, available, etag=etag, keep=True
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


@router.put(
    "/stock/{sku}",
    responses={status.HTTP_404_NOT_FOUND: error("not a SKU inventory sells"), **BODY_ERRORS},
)
async def set_stock(
    sku: SkuPath, level: StockLevel, dapr: DaprDep, settings: SettingsDep, turns: TurnsDep
) -> dict[str, int]:
    """Set one SKU's stock (for labs and tests): the internal admin side of inventory."""
    if sku not in PRICES_CENTS:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown SKU; one of: {', '.join(PRICES_CENTS)}"
        )

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
        status.HTTP_200_OK: {
            "model": Reservation,
            "description": "the order's reservation made before (a retried attempt), or a"
            " refusal: out of stock, unknown sku, or released (the order was given up)",
        },
        **FAULT_INJECTED,
        **BODY_ERRORS,
    },
)
async def reserve(
    request: ReservationRequest,
    dapr: DaprDep,
    settings: SettingsDep,
    faults: FaultsDep,
    turns: TurnsDep,
) -> Reservation | JSONResponse:
    """Hold the order's items. Refusals are business answers, so 200s (contracts.py)."""
    await faults.on_request()
    unknown = sorted({item.sku for item in request.items} - PRICES_CENTS.keys())
    if unknown:
        return created_nothing(_refusal(request.order_id, "unknown sku", unknown))
    key = _reservation_key(request.order_id)
    earlier = await get_state(dapr, settings.state_store, key)
    if earlier is not None:
        return created_nothing(Reservation.model_validate(earlier.value))
    wanted: dict[str, int] = {}
    for item in request.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    short, _ = await _change(dapr, settings, turns, _adding(wanted, -1))
    if short:
        return created_nothing(_refusal(request.order_id, "out of stock", short))
    reservation = Reservation(
        order_id=request.order_id,
        status="reserved",
        items=wanted,
        amount_cents=sum(PRICES_CENTS[sku] * qty for sku, qty in wanted.items()),
    )
    if await save_state(
        dapr, settings.state_store, key, reservation.model_dump(), insert_only=True
    ):
        log.info("stock reserved", extra={"order_id": request.order_id})
        return reservation
    # Another attempt of this reservation recorded it first, or the order was released
    # before this attempt landed: either way ours is one too many.
    await _change(dapr, settings, turns, _adding(wanted, +1))
    recorded = await get_state(dapr, settings.state_store, key)
    if recorded is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "reservation vanished")
    return created_nothing(Reservation.model_validate(recorded.value))


def _refusal(order_id: str, reason: str, skus: list[str]) -> Reservation:
    return Reservation.model_validate(
        {"order_id": order_id, "status": reason, "items": {}, "amount_cents": 0, "skus": skus}
    )


@router.get(
    "/reservations/{order_id}",
    responses={status.HTTP_404_NOT_FOUND: error("nothing reserved or released for this order")},
)
async def get_reservation(order_id: IdPath, dapr: DaprDep, settings: SettingsDep) -> Reservation:
    state = await get_state(dapr, settings.state_store, _reservation_key(order_id))
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no reservation for this order")
    return Reservation.model_validate(state.value)


@router.delete("/reservations/{order_id}")
async def release(
    order_id: IdPath, dapr: DaprDep, settings: SettingsDep, turns: TurnsDep
) -> Reservation:
    """Give the order's stock back, once, however often it is asked. A release that comes
    before the reservation (whose attempt is still on its way) records the order as
    released with nothing held, so that the reservation, when it lands, takes nothing."""
    key = _reservation_key(order_id)
    for _ in range(MAX_WRITE_ATTEMPTS):
        state = await get_state(dapr, settings.state_store, key)
        if state is None:
            nothing = Reservation(order_id=order_id, status="released", items={}, amount_cents=0)
            if await save_state(
                dapr, settings.state_store, key, nothing.model_dump(), insert_only=True
            ):
                log.info("released before any reservation", extra={"order_id": order_id})
                return nothing
            continue  # a reservation was recorded in between: release that one
        reservation = Reservation.model_validate(state.value)
        if reservation.status == "released":
            return reservation
        released = reservation.model_copy(update={"status": "released"})
        # Marked released over the version read: of two releases at once, one gives back.
        if await save_state(
            dapr, settings.state_store, key, released.model_dump(), etag=state.etag
        ):
            await _change(dapr, settings, turns, _adding(reservation.items, +1))
            log.info("stock released", extra={"order_id": order_id})
            return released
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "the reservation is changing too fast; try again"
    )
