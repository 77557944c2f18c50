"""Stock and reservations, kept in one state document guarded by its ETag.

Every reservation or release reads the document, changes it, and writes it back only over
the version it read. When another replica wrote in between, the write is refused and we
read again: that loop is optimistic concurrency, not a retry of a failure, and it is
bounded. The document also remembers the most recent reservations, so that a reservation
retried by Dapr's resiliency policy (the answer to the first attempt was lost) is
answered again instead of being taken twice.
https://docs.dapr.io/developing-applications/building-blocks/state-management/state-management-overview/#concurrency
"""

import logging
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
RECENT_RESERVATIONS = 1000


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


class _Document(BaseModel):
    available: dict[str, int]
    recent: dict[str, Reservation] = {}


SettingsDep = Annotated[InventorySettings, Depends(from_state("settings", InventorySettings))]


async def _read(dapr: DaprClient, settings: InventorySettings) -> tuple[_Document, str | None]:
    state = await dapr.get_state(settings.state_store, STOCK_KEY)
    if state is None:
        fresh = dict.fromkeys(PRICES_CENTS, settings.initial_stock)
        return _Document(available=fresh), None
    return _Document.model_validate(state.value), state.etag


async def _write(
    dapr: DaprClient, settings: InventorySettings, document: _Document, etag: str | None
) -> bool:
    value = document.model_dump()
    if etag is None:
        return await dapr.save_state(settings.state_store, STOCK_KEY, value, insert_only=True)
    return await dapr.save_state(settings.state_store, STOCK_KEY, value, etag=etag)


def _busy() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "stock is changing too fast; try again"
    )


@router.get("/stock")
async def get_stock(dapr: DaprDep, settings: SettingsDep) -> dict[str, int]:
    document, _ = await _read(dapr, settings)
    return document.available


@router.put("/stock/{sku}")
async def set_stock(
    sku: str, level: StockLevel, dapr: DaprDep, settings: SettingsDep
) -> dict[str, int]:
    """Set one SKU's stock (for labs and tests): the internal admin side of inventory."""
    if sku not in PRICES_CENTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, {"unknown_skus": [sku]})
    for _ in range(MAX_WRITE_ATTEMPTS):
        document, etag = await _read(dapr, settings)
        document.available[sku] = level.quantity
        if await _write(dapr, settings, document, etag):
            return document.available
    raise _busy()


@router.post(
    "/reservations",
    status_code=status.HTTP_201_CREATED,
    response_model=Reservation,
    responses={200: {"model": Shortage, "description": "not enough stock"}},
)
async def reserve(
    request: ReservationRequest, dapr: DaprDep, settings: SettingsDep, faults: FaultsDep
) -> Reservation | JSONResponse:
    await faults.on_request()
    unknown = sorted({item.sku for item in request.items} - PRICES_CENTS.keys())
    if unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, {"unknown_skus": unknown})
    wanted: dict[str, int] = {}
    for item in request.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    for _ in range(MAX_WRITE_ATTEMPTS):
        document, etag = await _read(dapr, settings)
        earlier = document.recent.get(request.order_id)
        if earlier is not None and not earlier.released:
            return earlier
        short = sorted(sku for sku, qty in wanted.items() if document.available[sku] < qty)
        if short:
            shortage = Shortage(order_id=request.order_id, short_skus=short)
            return JSONResponse(shortage.model_dump(), status_code=status.HTTP_200_OK)
        for sku, qty in wanted.items():
            document.available[sku] -= qty
        reservation = Reservation(
            order_id=request.order_id,
            items=wanted,
            amount_cents=sum(PRICES_CENTS[sku] * qty for sku, qty in wanted.items()),
        )
        document.recent[request.order_id] = reservation
        while len(document.recent) > RECENT_RESERVATIONS:
            del document.recent[next(iter(document.recent))]
        if await _write(dapr, settings, document, etag):
            log.info("stock reserved", extra={"order_id": request.order_id})
            return reservation
    raise _busy()


@router.delete("/reservations/{order_id}")
async def release(order_id: str, dapr: DaprDep, settings: SettingsDep) -> Reservation:
    for _ in range(MAX_WRITE_ATTEMPTS):
        document, etag = await _read(dapr, settings)
        reservation = document.recent.get(order_id)
        if reservation is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no recent reservation for this order")
        if reservation.released:
            return reservation
        for sku, qty in reservation.items.items():
            document.available[sku] += qty
        released = reservation.model_copy(update={"released": True})
        document.recent[order_id] = released
        if await _write(dapr, settings, document, etag):
            log.info("stock released", extra={"order_id": order_id})
            return released
    raise _busy()
