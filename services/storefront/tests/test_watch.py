"""storefront's watch on its sidecar: a sidecar that spins (busy, next to no work) for
``sidecar_spin_checks`` periods in a row is asked to shut down, and nothing else is."""

import asyncio

import httpx
import pytest

from orderflow_common.sidecar import configure_sdk
from orderflow_common.testing import TOKENS, FakeSidecar
from storefront.settings import StorefrontSettings
from storefront.watch import Sample, SidecarWatch, parse, spun

METRICS = """\
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# TYPE dapr_http_server_request_count counter
dapr_http_server_request_count{app_id="storefront",method="GET",path="",status="200"} 3
dapr_http_server_request_count{app_id="storefront",method="POST",path="",status="204"} 4
# TYPE dapr_component_pubsub_egress_count counter
dapr_component_pubsub_egress_count{app_id="storefront",topic="order-placed"} 2
# TYPE go_goroutines gauge
go_goroutines 310
"""


def test_a_scrape_is_the_cpu_used_and_the_work_done() -> None:
    assert parse(METRICS, at=7.0) == Sample(at=7.0, cpu_seconds=12.5, work=9.0)


@pytest.mark.parametrize(
    ("cpu_used", "operations", "spinning"),
    [
        (5.0, 0, True),  # a core for 5 s, serving nothing: the outbox spin
        (5.0, 2, True),  # the same with the app's own background reads
        (5.0, 15, False),  # three calls a second: serving, so left alone
        (5.0, 5_000, False),  # a core for 5,000 calls: working
        (0.05, 0, False),  # idle
        (1.0, 0, False),  # a fifth of a core: under the threshold
    ],
)
def test_a_sidecar_spins_when_busy_while_it_serves_next_to_nothing(
    cpu_used: float, operations: int, spinning: bool
) -> None:
    before = Sample(at=100.0, cpu_seconds=10.0, work=50.0)
    after = Sample(at=105.0, cpu_seconds=10.0 + cpu_used, work=50.0 + operations)

    assert spun(before, after, busy_cores=0.25) is spinning


def watched(samples: list[Sample | None], sidecar: FakeSidecar) -> SidecarWatch:
    settings = StorefrontSettings(APP_PORT=8001, sidecar_spin_checks=3, **TOKENS)

    async def run() -> SidecarWatch:
        configure_sdk(settings)
        watch = SidecarWatch(sidecar.client(), settings)
        for sample in samples:
            await watch.check(sample)
        return watch

    return asyncio.run(run())


def spinning_samples(periods: int, start: float = 0.0) -> list[Sample | None]:
    """A sidecar using a whole core and doing nothing, sampled every 5 s."""
    return [Sample(at=start + 5 * i, cpu_seconds=start + 5 * i, work=7) for i in range(periods + 1)]


def shutdowns(sidecar: FakeSidecar) -> int:
    return [call.path for call in sidecar.calls].count("/v1.0/shutdown")


@pytest.fixture
def sidecar() -> FakeSidecar:
    fake = FakeSidecar()
    fake.on("/v1.0/shutdown", httpx.codes.NO_CONTENT)
    return fake


def test_three_spinning_periods_in_a_row_ask_the_sidecar_to_shut_down(
    sidecar: FakeSidecar,
) -> None:
    watch = watched(spinning_samples(3), sidecar)

    assert shutdowns(sidecar) == 1
    assert watch.spinning == 0


def test_a_sidecar_busy_while_redis_is_away_is_left_alone(sidecar: FakeSidecar) -> None:
    sidecar.on("/v1.0/state/orderstore/sidecar-watch", 500, {"errorCode": "ERR_STATE_GET"})

    watch = watched(spinning_samples(5), sidecar)

    assert (shutdowns(sidecar), watch.spinning) == (0, 0)


def test_two_spinning_periods_do_not(sidecar: FakeSidecar) -> None:
    watch = watched(spinning_samples(2), sidecar)

    assert (shutdowns(sidecar), watch.spinning) == (0, 2)


def test_a_missed_scrape_or_a_new_sidecar_starts_the_count_again(sidecar: FakeSidecar) -> None:
    missed = [*spinning_samples(2), None, *spinning_samples(2, start=20.0)]
    # A restarted sidecar's CPU counter starts from zero.
    restarted = [*spinning_samples(2, start=100.0), *spinning_samples(2)]

    assert watched(missed, sidecar).spinning == 2
    assert watched(restarted, sidecar).spinning == 2
    assert shutdowns(sidecar) == 0
