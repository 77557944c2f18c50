"""What the services agree on at their HTTP boundaries: the shapes of ids, the internal
service-invocation routes (storefront → inventory, storefront → payments), and the error
bodies every service documents in its OpenAPI.

One definition for caller and callee, so that whatever storefront accepts from a client
inventory and payments accept from storefront: a client's mistake is refused at the edge
and never reaches a sidecar. Dapr's circuit breaker counts every answer outside 200-399
from an invoked app as a failure (dapr v1.18.2 ``pkg/api/http/directmessaging.go`` turns
it into an error, and ``pkg/resiliency/policy.go`` runs the breaker around each attempt;
retry ``matching`` does not reach the breaker). So the invoked routes answer a business
outcome (out of stock, unknown SKU, declined card) with a 2xx body that says so, and
storefront turns it into the client's 4xx. docs/resiliency.md has the whole picture.
"""

from typing import Annotated, Any, Literal

from fastapi import Path, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

# Ids travel in URLs (routes, and the sidecar's state API: /v1.0/state/<store>/<key>) and
# in state keys: letters, digits and a few separators only, starting with a letter or
# digit, so that no id can be a control character, a path segment or a key delimiter
# ("||" in Dapr's Redis keys). An order id is a UUID; customer ids and keys are the
# client's own.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
ID_MAX = 64
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
IdPath = Annotated[
    str,
    Path(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN, description="an order id"),
]
SKU_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=SKU_PATTERN)]
SkuPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=SKU_PATTERN, description="a SKU")
]
Quantity = Annotated[int, Field(ge=1, le=100)]
# A card processor's token for the card, never the card number itself.
PaymentToken = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Quantity


Items = Annotated[list[Item], Field(min_length=1, max_length=50)]


# inventory: POST /reservations, DELETE /reservations/{order_id}


class ReservationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Id
    items: Items


class Reservation(BaseModel):
    """What inventory holds, or refused to hold, for an order; the same shape is stored
    (reserved, released) and answered (any status).

    ``released`` with no items is a release that came before any reservation landed: a
    reservation attempt that arrives later finds it and takes nothing."""

    order_id: str
    status: Literal["reserved", "released", "out of stock", "unknown sku"]
    items: dict[str, int] = Field(description="the stock held (or given back)")
    amount_cents: int = Field(ge=0, description="what the items cost")
    skus: list[str] = Field(default=[], description="the SKUs short or unknown")


# payments: POST /charges, DELETE /charges/{order_id}


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: Id
    customer_id: Id
    amount_cents: PositiveInt
    payment_token: PaymentToken


class Charge(BaseModel):
    """An order's charge and what became of it; stored (charged, refunded, voided) and
    answered (any status; a decline is answered, never stored).

    ``voided`` is a refund that came before any charge landed: a charge attempt that
    arrives later finds it and charges nothing."""

    order_id: str
    status: Literal["charged", "declined", "refunded", "voided"]
    charge_id: str | None = Field(description="the processor's id; none if nothing was charged")
    amount_cents: int = Field(ge=0, description="what was charged (or refunded)")


def created_nothing(answer: BaseModel) -> JSONResponse:
    """An invoked route's answer that created nothing (a replay, or a business refusal):
    200, where a new reservation or charge is a 201."""
    return JSONResponse(answer.model_dump(), status_code=status.HTTP_200_OK)


# Error bodies


class ErrorBody(BaseModel):
    """A refusal with a readable cause. Other members may come with it (a 503 from a
    failed sidecar call also says its ``cause``)."""

    detail: str


def error(description: str) -> dict[str, Any]:
    """A ``responses`` entry for an ErrorBody answer."""
    return {"model": ErrorBody, "description": description}


# What any route that talks to its sidecar, or takes a body, may answer besides its own.
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    status.HTTP_503_SERVICE_UNAVAILABLE: error("a Dapr building block or a dependency is down")
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    # FastAPI's own answer to a body it cannot decode as text (not UTF-8), before any
    # validation; JSON that does not parse is a 422.
    status.HTTP_400_BAD_REQUEST: error("the body is not text"),
    status.HTTP_413_CONTENT_TOO_LARGE: error("the request body is over the size limit"),
}
FAULT_INJECTED: dict[int | str, dict[str, Any]] = {
    status.HTTP_500_INTERNAL_SERVER_ERROR: error(
        "only while a fault flag injects errors (error_rate, fail_attempts: docs/faults.md)"
    ),
    status.HTTP_503_SERVICE_UNAVAILABLE: error(
        "a Dapr building block is down, or the down fault flag is on"
    ),
}


def invalid(loc: tuple[str | int, ...], message: str, kind: str, value: Any) -> dict[str, Any]:
    """One error of a 422, in the shape FastAPI gives a validation error (and documents as
    HTTPValidationError), so that every 422 of every route reads alike."""
    return {"type": kind, "loc": loc, "msg": message, "input": value}
