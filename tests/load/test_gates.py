"""The load gates on made-up phase results: each gate fails alone, and only on the phases
it applies to."""

from orderflow_loadtest.gates import CPU_WARNING, PhaseResult, Thresholds, evaluate

THRESHOLDS = Thresholds(max_error_ratio=0.01, p95_ms=500, p99_ms=1000, min_rate_ratio=0.99)


def _phase(name: str = "steady", *, gated: bool = True, **overrides: float) -> PhaseResult:
    values: dict[str, float] = {
        "seconds": 60,
        "requests": 600,
        "failures": 0,
        "p95_ms": 100,
        "p99_ms": 200,
        "target_requests": 600,
    }
    values.update(overrides)
    return PhaseResult(
        name=name,
        gated=gated,
        seconds=values["seconds"],
        requests=int(values["requests"]),
        failures=int(values["failures"]),
        p95_ms=values["p95_ms"],
        p99_ms=values["p99_ms"],
        target_requests=values["target_requests"],
    )


def test_a_clean_run_passes() -> None:
    assert evaluate([_phase()], THRESHOLDS, locust_cpu_warning=False) == []


def test_each_gate_fails_on_its_own() -> None:
    assert evaluate([_phase(failures=7)], THRESHOLDS, locust_cpu_warning=False) == [
        "phase 'steady': error ratio 1.17% > 1.00% (7 of 600)"
    ]
    assert evaluate([_phase(p95_ms=501)], THRESHOLDS, locust_cpu_warning=False) == [
        "phase 'steady': p95 501 ms > 500 ms"
    ]
    assert evaluate([_phase(p99_ms=1001)], THRESHOLDS, locust_cpu_warning=False) == [
        "phase 'steady': p99 1001 ms > 1000 ms"
    ]
    assert evaluate([_phase(requests=593)], THRESHOLDS, locust_cpu_warning=False) == [
        "phase 'steady': achieved 593 of 600 target requests (0.988 < 0.99)"
    ]


def test_exactly_99_percent_of_the_target_rate_passes() -> None:
    assert evaluate([_phase(requests=594)], THRESHOLDS, locust_cpu_warning=False) == []


def test_errors_while_a_fault_is_injected_do_not_fail_the_run() -> None:
    chaos = [_phase("baseline"), _phase("payments down", gated=False, failures=300, p99_ms=9000)]

    assert evaluate(chaos, THRESHOLDS, locust_cpu_warning=False) == []


def test_a_locust_cpu_warning_fails_even_a_clean_run() -> None:
    assert evaluate([_phase()], THRESHOLDS, locust_cpu_warning=True) == [CPU_WARNING]


def test_a_run_without_a_gated_phase_fails() -> None:
    assert evaluate([_phase(gated=False)], THRESHOLDS, locust_cpu_warning=False) == [
        "no gated phase ran: nothing was measured"
    ]


def test_the_rate_gate_can_be_off_for_shoppers_that_stop_on_their_own() -> None:
    no_rate = Thresholds(max_error_ratio=0.01, p95_ms=500, p99_ms=1000, min_rate_ratio=None)

    assert evaluate([_phase(requests=10)], no_rate, locust_cpu_warning=False) == []
