"""The load shapes as data: the short chaos tour is the chaos tour, shorter. (Read in a
subprocess, as every locustfile runs: importing Locust monkey-patches the process.)"""

import json
import subprocess
import sys
from typing import Any

# resiliency.yaml: the breaker stays open this long before it lets a probe through.
BREAKER_OPEN_SECONDS = 10

PHASES = """
import dataclasses, json
from orderflow_loadtest.shapes import SCENARIOS
print(json.dumps({
    name: [dataclasses.asdict(phase) for phase in SCENARIOS[name].phases]
    for name in ("chaos", "chaos-short")
}))
"""


def _phases() -> dict[str, list[dict[str, Any]]]:
    run = subprocess.run(
        [sys.executable, "-c", PHASES], capture_output=True, text=True, timeout=60, check=True
    )
    phases: dict[str, list[dict[str, Any]]] = json.loads(run.stdout)
    return phases


def test_chaos_short_is_every_chaos_phase_in_100_seconds() -> None:
    phases = _phases()

    def without_seconds(scenario: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in phase.items() if k != "seconds"} for phase in phases[scenario]]

    assert without_seconds("chaos-short") == without_seconds("chaos")
    assert sum(phase["seconds"] for phase in phases["chaos-short"]) == 100
    seconds = {phase["name"]: phase["seconds"] for phase in phases["chaos-short"]}
    assert seconds["payments recovering"] > BREAKER_OPEN_SECONDS
    # The gated phase after the faults is the longest: a rate and a p99 need samples.
    assert seconds["recovered"] == max(seconds.values())
