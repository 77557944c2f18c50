"""Fault flags: failures a demo or a test switches on at runtime, without a restart.

Opt-in: only an app with FAULTS_ENABLED (ServiceSettings.faults_enabled) watches its flags
and has the routes below; elsewhere every flag stays off. Each flag is a key
``<service>.<flag>`` in the Dapr configuration store (Redis), ``<service>`` the app's own
name. Every replica reads its service's flags at start and subscribes to changes, so one
write reaches them all. Flags are written through the token-guarded
``PUT /faults/{service}`` route (orderflow_common.faultadmin, mounted on storefront;
``orderflow fault`` and Locust use it). See docs/faults.md for the catalogue.
https://docs.dapr.io/developing-applications/building-blocks/configuration/
"""

import asyncio
import hashlib
import logging
import random
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orderflow_common.deps import Provided
from orderflow_common.sidecar import DaprClient, get_configuration, watch_configuration

log = logging.getLogger(__name__)

CONFIG_STORE = "configstore"


class FaultFlags(BaseModel):
    """One service's flags; every one is off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    error_rate: int = Field(default=0, ge=0, le=100, description="% of requests answered 500")
    fail_attempts: int = Field(
        default=0, ge=0, le=20, description="the first N attempts of each request fail with 500"
    )
    latency_ms: int = Field(default=0, ge=0, le=60_000, description="added to every request")
    down: bool = Field(default=False, description="answer 503 to every request but health")
    poison_rate: int = Field(
        default=0, ge=0, le=100, description="% of events a subscriber can never process"
    )
    cpu_hog_ms: int = Field(
        default=0, ge=0, le=10_000, description="CPU burned on top of each request or event"
    )


FLAG_NAMES = tuple(FaultFlags.model_fields)


def config_key(service: str, flag: str) -> str:
    return f"{service}.{flag}"


def parse_flags(service: str, values: dict[str, str]) -> FaultFlags:
    """Flags from configuration items; an empty value is the default (a deleted key)."""
    raw = {
        flag: values[config_key(service, flag)]
        for flag in FLAG_NAMES
        if values.get(config_key(service, flag))
    }
    return FaultFlags.model_validate(raw)


class Faults:
    """The current flags of this service, and how they act on a request or an event."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.flags = FaultFlags()
        self._values: dict[str, str] = {}

    def update(self, values: dict[str, str]) -> None:
        merged = {**self._values, **values}
        try:
            flags = parse_flags(self.service, merged)
        except ValidationError as error:
            # The route that writes flags validates them; a hand-written bad value is
            # logged and ignored rather than breaking the service.
            log.warning("ignoring invalid fault flags", extra={"error": str(error)})
            return
        self._values = merged
        if flags != self.flags:
            log.warning("fault flags changed", extra={"flags": flags.model_dump()})
        self.flags = flags

    async def on_request(self, attempt: int | None = None) -> None:
        """Apply the request flags: latency, CPU, down (503), then errors (500).
        ``attempt`` counts the tries of one logical request (a charge for an order), for
        ``fail_attempts``; requests that cannot count leave it out."""
        flags = self.flags
        if flags.latency_ms:
            await asyncio.sleep(flags.latency_ms / 1000)
        if flags.cpu_hog_ms:
            await asyncio.to_thread(burn_cpu, flags.cpu_hog_ms)
        if flags.down:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "fault injected: down")
        if attempt is not None and attempt <= flags.fail_attempts:
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                f"fault injected: attempt {attempt} of {flags.fail_attempts} failing",
            )
        if flags.error_rate and random.uniform(0, 100) < flags.error_rate:  # noqa: S311
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "fault injected: error")

    def is_poison(self, event_id: str) -> bool:
        """Whether this event is one this subscriber can never process. Decided by the
        event id, so every redelivery of it fails alike until it is dead-lettered."""
        rate = self.flags.poison_rate
        bucket = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:2]) % 100
        return bucket < rate


def burn_cpu(milliseconds: int) -> None:
    """Keep one core busy for ``milliseconds``: real CPU load, as an HPA sees it. Callers
    run it in a thread, so the event loop still answers health probes meanwhile."""
    deadline = time.perf_counter() + milliseconds / 1000
    digest = b"orderflow"
    while time.perf_counter() < deadline:
        digest = hashlib.sha256(digest).digest()


async def watch(dapr: DaprClient, faults: Faults) -> None:
    """Read this service's flags, then apply their changes as the sidecar streams them,
    until cancelled."""
    keys = [config_key(faults.service, flag) for flag in FLAG_NAMES]
    faults.update(await get_configuration(dapr, CONFIG_STORE, keys))
    await watch_configuration(dapr, CONFIG_STORE, keys, faults.update)


router = APIRouter(tags=["faults"], include_in_schema=False)


# Passed in by create_service_app, which makes one per app.
get_faults = Provided[Faults]()
FaultsDep = Annotated[Faults, Depends(get_faults)]


@router.get("/faults", include_in_schema=True)
async def current_flags(faults: FaultsDep) -> FaultFlags:
    """The flags this replica applies now (they reach it a moment after they are set)."""
    return faults.flags
