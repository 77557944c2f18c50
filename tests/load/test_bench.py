"""The benchmark's generator and comparison, without a stack: the generator offers
exactly the planned requests on schedule, and counts what it could not send."""

import asyncio
import time

from orderflow_devtools.bench import KEY_FIGURES, compare, fixed_rate


async def test_fixed_rate_sends_rate_times_seconds_on_schedule() -> None:
    sent_at: list[float] = []

    async def send() -> bool:
        sent_at.append(time.perf_counter())
        return True

    run = await fixed_rate(send, rps=100, seconds=0.5)

    assert run.sent == 50
    assert len(run.latencies_ms) == 50
    assert run.errors == 0
    # On schedule: the 50th request leaves 0.49 s after the first, never earlier (later
    # only by the event loop's lag, which a busy CI machine can stretch).
    assert 0.485 < sent_at[-1] - sent_at[0] < 1.0


async def test_failed_and_overflowing_requests_are_errors_not_latencies() -> None:
    async def slow_failure() -> bool:
        await asyncio.sleep(0.2)
        return False

    # 20 requests in 0.1 s, at most 5 in flight: 5 sent (and fail), 15 refused at once.
    run = await fixed_rate(slow_failure, rps=200, seconds=0.1, concurrency=5)

    assert run.sent == 20
    assert run.errors == 20
    assert run.latencies_ms == []


def test_compare_lists_each_key_figure_with_its_ratio() -> None:
    environment = {"when": "then", "cpu_model": "cpu", "cpus": 2}
    baseline = {
        "environment": environment,
        "invocation": {"added_ms": {"p50": 1.0, "p90": 2.0, "p99": 4.0}},
        "orders": {"max_sustained_rps": 10},
    }
    now = {
        "environment": environment,
        "invocation": {"added_ms": {"p50": 1.5, "p90": 2.0, "p99": 2.0}},
        "orders": {"max_sustained_rps": 12},
    }

    table = compare(now, baseline)

    assert "| invocation added p50 ms | 1 | 1.5 | 1.50 | lower |" in table
    assert "| invocation added p99 ms | 4 | 2 | 0.50 | lower |" in table
    assert "| orders max sustained rps | 10 | 12 | 1.20 | higher |" in table
    # Figures missing from either side are left out, not shown as zero.
    rows = [line for line in table.splitlines() if line.startswith("| ") and "figure" not in line]
    assert len(rows) == 4
    assert len(KEY_FIGURES) == 9
