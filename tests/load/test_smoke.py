"""The smoke scenario against the real local stack, as CI runs it: Locust's exit code is
the gates' verdict, and its CSV has exactly the requests four one-journey shoppers make."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.stack import LocalStack

pytestmark = pytest.mark.integration

SHOPPERS = 4


def _smoke(local_stack: LocalStack, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "orderflow_loadtest", "smoke"),
            *("--host", local_stack.app_url("storefront")),
            *("--inventory-host", local_stack.app_url("inventory")),
            *("--out", str(out)),
        ],
        # Locust browses and refills inventory's stock as storefront's sidecar would.
        env={**os.environ, "ORDERFLOW_INVENTORY_TOKEN": local_stack.tokens.app_api["inventory"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_smoke_run_passes_its_gates_with_one_exact_journey_per_shopper(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    run = _smoke(local_stack, tmp_path)

    assert run.returncode == 0, run.stderr[-2000:]
    with (tmp_path / "smoke_stats.csv").open() as stats_file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(stats_file)}
    counts = {key: int(row["Request Count"]) for key, row in rows.items()}
    failures = {key: int(row["Failure Count"]) for key, row in rows.items()}
    # Each shopper: one browse, one order, its replay, and its flow to notified.
    assert counts[("GET", "GET /stock")] == SHOPPERS
    assert counts[("POST", "POST /orders")] == SHOPPERS
    assert counts[("POST", "POST /orders (replay)")] == SHOPPERS
    assert counts[("FLOW", "order placed -> notified")] == SHOPPERS
    # Polls until notified: at least one each, how many depends on the timing.
    assert counts[("GET", "GET /orders/{id}")] >= SHOPPERS
    assert set(counts) == {
        ("GET", "GET /stock"),
        ("POST", "POST /orders"),
        ("POST", "POST /orders (replay)"),
        ("FLOW", "order placed -> notified"),
        ("GET", "GET /orders/{id}"),
        ("", "Aggregated"),
    }
    assert failures[("", "Aggregated")] == 0
    assert (tmp_path / "smoke.html").stat().st_size > 0
    phases = json.loads((tmp_path / "smoke-phases.json").read_text())
    assert phases["passed"] is True
    assert phases["failed_gates"] == []
    assert [phase["name"] for phase in phases["phases"]] == ["journeys"]
    assert phases["phases"][0]["orders_notified"]["orders"] == SHOPPERS
    assert phases["phases"][0]["failures"] == 0


def test_errors_outside_an_injected_fault_fail_the_run_with_exit_code_1(
    local_stack: LocalStack, shop: Shop, tmp_path: Path
) -> None:
    # smoke injects no fault, so a payments outage it did not ask for is a real failure.
    shop.set_faults("payments", down=True)
    try:
        run = _smoke(local_stack, tmp_path)
    finally:
        shop.clear_faults("payments")

    assert run.returncode == 1, run.stderr[-2000:]
    phases = json.loads((tmp_path / "smoke-phases.json").read_text())
    assert phases["passed"] is False
    # Each shopper browses (ok) and orders (503), then stops: 4 failures in 8 requests.
    assert "phase 'journeys': error ratio 50.00% > 1.00% (4 of 8)" in phases["failed_gates"]
    assert "gate failed: phase 'journeys': error ratio 50.00%" in run.stderr
    with (tmp_path / "smoke_failures.csv").open() as failures_file:
        failures = list(csv.DictReader(failures_file))
    assert [(row["Name"], row["Error"], row["Occurrences"]) for row in failures] == [
        ("POST /orders", "CatchResponseError('503: payments unavailable')", str(SHOPPERS))
    ]
