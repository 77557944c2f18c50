"""The token-guarded routes that set and clear every service's fault flags: what
``orderflow fault`` and the Locust chaos scenario call. Values are written to the Dapr
configuration store through the ``faultflags`` binding; each service's replicas pick
them up through their configuration subscription."""

import hmac
import json
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from pydantic import SecretStr

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
from orderflow_common.sidecar import get_configuration

log = logging.getLogger(__name__)
BINDING = "faultflags"


def _authorised_by(expected: SecretStr) -> Callable[[str | None], None]:
    def authorised(token: Annotated[str | None, Header(alias="X-Fault-Token")] = None) -> None:
        # Constant time, so that the answer's timing tells nothing about the token.
        secret = expected.get_secret_value().encode()
        if token is None or not hmac.compare_digest(token.encode(), secret):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a valid X-Fault-Token header is needed")

    return authorised


def admin_router(token: SecretStr) -> APIRouter:
    """The fault admin API, guarded by ``token``: storefront mounts it only where
    STOREFRONT_FAULT_TOKEN is set, so without it the routes do not exist (404)."""
    admin = APIRouter(dependencies=[Depends(_authorised_by(token))])
    admin.include_router(router)
    return admin


router = APIRouter(
    prefix="/faults",
    tags=["faults"],
    responses={
        status.HTTP_403_FORBIDDEN: error("no valid X-Fault-Token header"),
        status.HTTP_404_NOT_FOUND: error("not one of our services"),
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
    return parse_flags(service, await get_configuration(dapr, CONFIG_STORE, keys))


@router.put("/{service}", responses=BODY_ERRORS)
async def set_flags(service: ServiceDep, flags: FaultFlags, dapr: DaprDep) -> FaultFlags:
    """Replace the service's flags: a flag left out goes back to its default (off)."""
    defaults = FaultFlags()
    for flag in FLAG_NAMES:
        value = getattr(flags, flag)
        key = config_key(service, flag)
        if value == getattr(defaults, flag):
            await dapr.invoke_binding(BINDING, "delete", binding_metadata={"key": key})
        else:
            # The binding stores the data's JSON text: 30 and true, as the flags parse.
            await dapr.invoke_binding(BINDING, "create", json.dumps(value), {"key": key})
    log.warning("fault flags set", extra={"service": service, "flags": flags.model_dump()})
    return flags


@router.delete("/{service}")
async def clear_flags(service: ServiceDep, dapr: DaprDep) -> FaultFlags:
    return await set_flags(service, FaultFlags(), dapr)
