"""The pass/fail gates of a load run, as plain data and one function, so they are tested
without Locust.

They follow Dapr's own performance gates (no errors, achieved rate above 0.99 x target;
https://github.com/dapr/dapr/tree/master/tests/perf) and apply only to the phases in which
no fault is injected and nothing is recovering: a chaos run is allowed its 503s while
payments is down, not afterwards. A run in which Locust's own CPU went above 90% measured
Locust, not orderflow, and fails whatever its numbers.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    max_error_ratio: float
    p95_ms: float
    p99_ms: float
    min_rate_ratio: float | None  # None: the scenario's shoppers stop on their own


@dataclass(frozen=True)
class PhaseResult:
    name: str
    gated: bool
    seconds: float
    requests: int
    failures: int
    p95_ms: float
    p99_ms: float
    target_requests: float

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def rate_ratio(self) -> float:
        return self.requests / self.target_requests if self.target_requests else 1.0


CPU_WARNING = "Locust's own CPU went above 90%: it measured itself, not orderflow"


def evaluate(
    phases: list[PhaseResult], thresholds: Thresholds, locust_cpu_warning: bool
) -> list[str]:
    """Every gate that failed, one line each; an empty list is a pass."""
    failed = [CPU_WARNING] if locust_cpu_warning else []
    gated = [phase for phase in phases if phase.gated]
    if not gated:
        return [*failed, "no gated phase ran: nothing was measured"]
    for phase in gated:
        where = f"phase {phase.name!r}"
        if phase.requests == 0:
            failed.append(f"{where}: no requests")
            continue
        if phase.error_ratio > thresholds.max_error_ratio:
            failed.append(
                f"{where}: error ratio {phase.error_ratio:.2%} > {thresholds.max_error_ratio:.2%}"
                f" ({phase.failures} of {phase.requests})"
            )
        if phase.p95_ms > thresholds.p95_ms:
            failed.append(f"{where}: p95 {phase.p95_ms:.0f} ms > {thresholds.p95_ms:.0f} ms")
        if phase.p99_ms > thresholds.p99_ms:
            failed.append(f"{where}: p99 {phase.p99_ms:.0f} ms > {thresholds.p99_ms:.0f} ms")
        if thresholds.min_rate_ratio is not None and phase.rate_ratio < thresholds.min_rate_ratio:
            failed.append(
                f"{where}: achieved {phase.requests} of {phase.target_requests:.0f} target "
                f"requests ({phase.rate_ratio:.3f} < {thresholds.min_rate_ratio})"
            )
    return failed
