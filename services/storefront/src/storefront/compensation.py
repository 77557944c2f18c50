"""Compensation: what a failed order holds is given back, now or, when inventory or
payments cannot be reached, later (docs/resiliency.md, "Compensation").

The undo calls are inventory's ``DELETE /reservations/{order_id}`` and payments' ``DELETE
/charges/{order_id}``: keyed by the order id and idempotent, so asking again is always
safe. One that still fails after Dapr's retries is owed: its order id goes into one
document in storefront's state store (``compensations-owed``, kept past the store's time
to live), and every replica settles that document in the background until each call
succeeds, after a restart too, since the document is in Redis. An order whose record
reads ``paid`` is never compensated: it is shipping (the commit point failed for
storefront but was applied; orders.py).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, status
from pydantic import BaseModel

from orderflow_common.deps import get_dapr
from orderflow_common.sidecar import SIDECAR_ERRORS, DaprClient, get_state, save_state
from storefront.deps import get_settings
from storefront.model import order_key
from storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)

OWED_KEY = "compensations-owed"
MAX_WRITE_ATTEMPTS = 20


class LedgerBusyError(Exception):
    """The owed document kept changing under every attempt to write it."""


# What keeps an owed compensation from being written or settled now.
UNAVAILABLE = (*SIDECAR_ERRORS, LedgerBusyError)


class Owed(BaseModel):
    """What an order still has to be given back: always its reservation, and with
    ``refund`` its charge."""

    refund: bool


# The owed document: order id -> what it is owed.
Ledger = dict[str, Owed]


async def compensate(
    dapr: DaprClient, settings: StorefrontSettings, order_id: str, *, refund: bool
) -> None:
    """Undo what the order may hold: its reservation, and with ``refund`` its charge.
    What cannot be undone now is owed, and settled later by :func:`settle`."""
    if await _undo(dapr, settings, order_id, Owed(refund=refund)):
        return
    await owe(dapr, settings, order_id, refund=refund)


async def owe(
    dapr: DaprClient, settings: StorefrontSettings, order_id: str, *, refund: bool
) -> None:
    """Record the order's compensation as owed, for :func:`settle`, which compensates
    the order unless its record reads paid by then."""
    try:
        await _update(dapr, settings, lambda ledger: _owe(ledger, order_id, refund))
    except UNAVAILABLE:
        # The state store is failing us too (Redis down): nothing durable can be written.
        log.exception("not compensated", extra={"order_id": order_id})
        return
    log.warning("compensation owed", extra={"order_id": order_id, "refund": refund})


async def settle(dapr: DaprClient, settings: StorefrontSettings) -> int:
    """Try every owed compensation once; forget those done. Returns how many are left."""
    state = await get_state(dapr, settings.state_store, OWED_KEY)
    ledger = _ledger(state.value if state is not None else None)
    done: list[str] = []
    for order_id, owed in ledger.items():
        if await _is_paid(dapr, settings, order_id):
            log.warning(
                "owed compensation dropped: the order is paid", extra={"order_id": order_id}
            )
            done.append(order_id)
        elif await _undo(dapr, settings, order_id, owed):
            log.info("owed compensation done", extra={"order_id": order_id})
            done.append(order_id)
    if done:
        await _update(dapr, settings, lambda ledger: _forget(ledger, done))
    return len(ledger) - len(done)


async def _undo(dapr: DaprClient, settings: StorefrontSettings, order_id: str, owed: Owed) -> bool:
    """Ask for every undo call ``owed`` names; True when each answered 200."""
    undo = [(settings.inventory_app_id, f"reservations/{order_id}")]
    if owed.refund:
        undo.append((settings.payments_app_id, f"charges/{order_id}"))
    undone = True
    for app_id, method in undo:
        try:
            response = await dapr.invoke_method(app_id, method, http_verb="DELETE")
        except SIDECAR_ERRORS as failure:
            log.warning(
                "compensation failed",
                extra={"order_id": order_id, "app_id": app_id, "error": str(failure)},
            )
            undone = False
            continue
        if response.status_code != status.HTTP_200_OK:
            log.warning(
                "compensation failed",
                extra={"order_id": order_id, "app_id": app_id, "status": response.status_code},
            )
            undone = False
    return undone


async def _is_paid(dapr: DaprClient, settings: StorefrontSettings, order_id: str) -> bool:
    stored = await get_state(dapr, settings.state_store, order_key(order_id))
    return stored is not None and stored.value.get("status") == "paid"


def _ledger(value: Any) -> Ledger:
    return {order_id: Owed.model_validate(owed) for order_id, owed in (value or {}).items()}


def _owe(ledger: Ledger, order_id: str, refund: bool) -> None:
    earlier = ledger.get(order_id)
    ledger[order_id] = Owed(refund=refund or (earlier is not None and earlier.refund))


def _forget(ledger: Ledger, order_ids: list[str]) -> None:
    for order_id in order_ids:
        ledger.pop(order_id, None)


async def _update(
    dapr: DaprClient, settings: StorefrontSettings, change: Callable[[Ledger], None]
) -> None:
    """Apply ``change`` to the owed document over the version it read, reading again
    after a lost race (replicas and requests write it concurrently)."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        state = await get_state(dapr, settings.state_store, OWED_KEY)
        ledger = _ledger(state.value if state is not None else None)
        change(ledger)
        value = {order_id: owed.model_dump() for order_id, owed in ledger.items()}
        # Kept past the store's time to live (statestores.yaml): a debt must not expire.
        if state is None:
            written = await save_state(
                dapr, settings.state_store, OWED_KEY, value, insert_only=True, keep=True
            )
        else:
            written = await save_state(
                dapr, settings.state_store, OWED_KEY, value, etag=state.etag, keep=True
            )
        if written:
            return
    raise LedgerBusyError(f"{OWED_KEY} kept changing under {MAX_WRITE_ATTEMPTS} writes")


async def _settle_forever(dapr: DaprClient, settings: StorefrontSettings) -> None:
    """Settle the owed compensations every ``compensation_interval_seconds``, the first
    time one interval after start. Each pass is one round of calls through the sidecar,
    with Dapr's retries and breakers as for any call: a schedule for a durable debt, not
    a retry loop around one call."""
    while True:
        await asyncio.sleep(settings.compensation_interval_seconds)
        try:
            left = await settle(dapr, settings)
        except UNAVAILABLE as failure:
            log.warning("owed compensations not settled", extra={"error": str(failure)})
        else:
            if left:
                log.warning("compensations still owed", extra={"owed": left})


@asynccontextmanager
async def _settling(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(_settle_forever(get_dapr.of(app), get_settings.of(app)))
    task.add_done_callback(_log_end)
    yield
    task.cancel()


def _log_end(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("owed compensations not settled", extra={"error": str(task.exception())})


# No routes: the lifespan that settles what is owed, in the background.
router = APIRouter(lifespan=_settling)
