"""The token-guarded routes that set and clear every service's fault flags: what
``orderflow fault`` and the Locust chaos scenario call. Values are written to the Dapr
configuration store through the ``faultflags`` binding; each service's replicas pick
them up through their configuration subscription. Part of the opt-in fault injection
(orderflow_common.faults): an app mounts it only with FAULTS_ENABLED and its own token.
It knows no service names: the app that mounts it passes those it may set (the local
stack and the chaos overlay give storefront the registry's, dapr.yaml)."""

import hmac
import json
import logging
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from pydantic import SecretStr

from orderflow_common.contracts import BODY_ERRORS, UNAVAILABLE, error
from orderflow_common.deps import DaprDep
from orderflow_common.faults import CONFIG_STORE, FLAG_NAMES, FaultFlags, config_key, parse_flags
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


def _known_from(services: Sequence[str]) -> Callable[[str], None]:
    names = ", ".join(services)

    def known(service: str) -> None:
        if service not in services:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown service; one of: {names}")

    return known


def admin_router(token: SecretStr, services: Sequence[str]) -> APIRouter:
    """The fault admin API for ``services``, guarded by ``token`` (checked first, so an
    unknown name tells a caller without it nothing). storefront mounts it only where
    FAULTS_ENABLED and STOREFRONT_FAULT_TOKEN are set: otherwise the routes do not exist
    (404)."""
    admin = APIRouter(dependencies=[Depends(_authorised_by(token)), Depends(_known_from(services))])
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


@router.get("/{service}")
async def get_flags(service: str, dapr: DaprDep) -> FaultFlags:
    keys = [config_key(service, flag) for flag in FLAG_NAMES]
    return parse_flags(service, await get_configuration(dapr, CONFIG_STORE, keys))


@router.put("/{service}", responses=BODY_ERRORS)
async def set_flags(service: str, flags: FaultFlags, dapr: DaprDep) -> FaultFlags:
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
async def clear_flags(service: str, dapr: DaprDep) -> FaultFlags:
    return await set_flags(service, FaultFlags(), dapr)
