"""The token-guarded routes that set and clear every service's fault flags: what
``orderflow fault`` and the Locust chaos scenario call. Values are written to the Dapr
configuration store through the ``faultflags`` binding; each service's replicas pick
them up through their configuration subscription."""

import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status

from orderflow_common.app import DaprDep
from orderflow_common.contracts import BODY_ERRORS, UNAVAILABLE, error
from orderflow_common.faults import (
    CONFIG_STORE,
    FLAG_NAMES,
    SERVICES,
    FaultFlags,
    config_key,
    parse_flags,
)
from storefront.orders import SettingsDep

log = logging.getLogger(__name__)
BINDING = "faultflags"


def _authorised(
    settings: SettingsDep, token: Annotated[str | None, Header(alias="X-Fault-Token")] = None
) -> None:
    if settings.fault_token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "fault injection is disabled")
    expected = settings.fault_token.get_secret_value()
    if token is None or not hmac.compare_digest(token, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a valid X-Fault-Token header is needed")


router = APIRouter(
    prefix="/faults",
    tags=["faults"],
    dependencies=[Depends(_authorised)],
    responses={
        status.HTTP_403_FORBIDDEN: error("no valid X-Fault-Token header"),
        status.HTTP_404_NOT_FOUND: error("fault injection is off, or not one of our services"),
        **UNAVAILABLE,
    },
)


def _known(service: str) -> str:
    if service not in SERVICES:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unknown service; one of: {', '.join(SERVICES)}"
        )
    return service


ServiceDep = Annotated[str, Depends(_known)]


@router.get("/{service}")
async def get_flags(service: ServiceDep, dapr: DaprDep) -> FaultFlags:
    keys = [config_key(service, flag) for flag in FLAG_NAMES]
    return parse_flags(service, await dapr.get_configuration(CONFIG_STORE, keys))


@router.put("/{service}", responses=BODY_ERRORS)
async def set_flags(service: ServiceDep, flags: FaultFlags, dapr: DaprDep) -> FaultFlags:
    """Replace the service's flags: a flag left out goes back to its default (off)."""
    defaults = FaultFlags()
    for flag in FLAG_NAMES:
        value = getattr(flags, flag)
        key = config_key(service, flag)
        if value == getattr(defaults, flag):
            await dapr.invoke_binding(BINDING, "delete", None, {"key": key})
        else:
            # The binding stores the data's JSON text: 30 and true, as the flags parse.
            await dapr.invoke_binding(BINDING, "create", value, {"key": key})
    log.warning("fault flags set", extra={"service": service, "flags": flags.model_dump()})
    return flags


@router.delete("/{service}")
async def clear_flags(service: ServiceDep, dapr: DaprDep) -> FaultFlags:
    return await set_flags(service, FaultFlags(), dapr)
