"""storefront watches its own sidecar for the outbox spin, and asks a spinning sidecar to
shut down (``POST /v1.0/shutdown``), so that what runs it starts a fresh one: the kubelet
restarts the daprd container of the pod, the local launcher restarts the process.

After a Redis outage of more than ~20 s, Dapr 1.18.2's transactional outbox retries the
state read of every message that was in flight, at once and forever (a
``backoff.ExponentialBackOff`` without its ``Stop``, pkg/runtime/pubsub/outbox.go;
cenkalti/backoff#120): the sidecar burns its CPU while it serves next to nothing, and
keeps serving what it is asked, so the injected ``/v1.0/healthz`` liveness probe of
Kubernetes passes. Only storefront's sidecar runs an outbox. docs/resiliency.md,
"Recovery", says what was seen.

The signal is the sidecar's own metrics endpoint, readable from the app's container in
the pod: ``process_cpu_seconds_total`` (daprd registers the Prometheus process
collector) and the counters of the work it does. A sidecar spins when, through a whole
period, it kept ``sidecar_busy_cores`` of a core busy while it served next to nothing
(under ``IDLE_OPERATIONS_PER_SECOND``: storefront's own background reads stay below
it), and its state store answers: during a Redis outage the sidecar's consumers keep it
busy too, retrying their reads, and a sidecar restarted then could not load its
components. A sidecar that spins while it serves is left alone until it serves next to
nothing: its restart refuses calls for a few seconds, which an idle sidecar costs no one.
https://docs.dapr.io/reference/api/shutdown_api/
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, FastAPI
from opentelemetry import metrics
from prometheus_client.parser import text_string_to_metric_families

from orderflow_common.deps import get_dapr
from orderflow_common.sidecar import SIDECAR_ERRORS, DaprClient, get_state
from storefront.deps import get_settings
from storefront.settings import StorefrontSettings

log = logging.getLogger(__name__)
# Exposed as orderflow_sidecar_shutdowns_total.
SHUTDOWNS = metrics.get_meter("storefront").create_counter(
    "orderflow.sidecar.shutdowns", "{shutdown}", "Shutdowns asked of a spinning sidecar."
)

CPU = "process_cpu_seconds_total"
# What the sidecar does for its app and its topics.
WORK = (
    "dapr_http_server_request_count",
    "dapr_grpc_io_server_completed_rpcs",
    "dapr_component_pubsub_ingress_count",
    "dapr_component_pubsub_egress_count",
)
# Above what an idle storefront pod asks of its sidecar: a state read every 5 s
# (compensation.py), this watch's own, and on Kubernetes the kubelet's probes of the
# sidecar (Dapr injects them every few seconds).
IDLE_OPERATIONS_PER_SECOND = 2.0


@dataclass(frozen=True)
class Sample:
    at: float
    cpu_seconds: float
    work: float


def parse(text: str, at: float) -> Sample:
    """One scrape of the sidecar's metrics, as CPU seconds used and work done so far."""
    # The parser follows OpenMetrics and names every counter's samples ``*_total``, even
    # where the exposition does not (dapr_http_server_request_count).
    work_names = {f"{name}_total" for name in WORK}
    cpu = work = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CPU:
                cpu += sample.value
            elif sample.name in work_names:
                work += sample.value
    return Sample(at, cpu, work)


def spun(before: Sample, after: Sample, busy_cores: float) -> bool:
    """Whether the sidecar spun from ``before`` to ``after``: busy, serving next to nothing."""
    seconds = after.at - before.at
    busy = (after.cpu_seconds - before.cpu_seconds) / seconds >= busy_cores
    return busy and (after.work - before.work) / seconds < IDLE_OPERATIONS_PER_SECOND


# Never written: reading it asks only whether the state store answers.
PROBE_KEY = "sidecar-watch"


class SidecarWatch:
    """Counts the periods in a row in which the sidecar spun; after ``spin_checks`` of
    them :meth:`check` asks it to shut down."""

    def __init__(self, dapr: DaprClient, settings: StorefrontSettings) -> None:
        self._dapr = dapr
        self._settings = settings
        self._last: Sample | None = None
        self.spinning = 0

    async def check(self, sample: Sample | None) -> None:
        last, self._last = self._last, sample
        if sample is None or last is None or sample.cpu_seconds < last.cpu_seconds:
            # No sample, or a new sidecar process (its counters started again).
            self.spinning = 0
            return
        if not spun(last, sample, self._settings.sidecar_busy_cores):
            self.spinning = 0
            return
        if not await self._store_answers():
            # Redis is away: the sidecar's consumers retrying their reads keep it busy
            # too, and a restart now could not load its components. Not the spin.
            self.spinning = 0
            return
        self.spinning += 1
        log.warning("sidecar spinning", extra={"periods": self.spinning})
        if self.spinning < self._settings.sidecar_spin_checks:
            return
        self.spinning, self._last = 0, None
        try:
            await self._dapr.shutdown()
        except SIDECAR_ERRORS as failure:
            log.warning("spinning sidecar did not shut down", extra={"error": str(failure)})
            return
        SHUTDOWNS.add(1)
        log.error("spinning sidecar asked to shut down, to be restarted")

    async def _store_answers(self) -> bool:
        try:
            await get_state(self._dapr, self._settings.state_store, PROBE_KEY)
        except SIDECAR_ERRORS:
            return False
        return True


async def _watch_forever(dapr: DaprClient, settings: StorefrontSettings, url: str) -> None:
    watch = SidecarWatch(dapr, settings)
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            await asyncio.sleep(settings.sidecar_watch_seconds)
            try:
                response = (await http.get(url)).raise_for_status()
            except httpx.HTTPError:
                # Down or restarting: its own liveness probe is the judge of that.
                await watch.check(None)
                continue
            await watch.check(parse(response.text, loop.time()))


@asynccontextmanager
async def _watching(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings.of(app)
    SHUTDOWNS.add(0)  # the series exists from the start
    if settings.sidecar_metrics_url is None:
        yield
        return
    task = asyncio.create_task(
        _watch_forever(get_dapr.of(app), settings, settings.sidecar_metrics_url)
    )
    yield
    task.cancel()


# No routes: the lifespan that watches the sidecar, in the background.
router = APIRouter(lifespan=_watching)
