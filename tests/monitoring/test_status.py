"""`orderflow status` places each entity of the specification in the state the test drove
it to: from nothing configured, through a fresh stack, traffic and faults, to a stopped
sidecar and a stopped Prometheus."""

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import JAEGER_QUERY_PORT, LOOPBACK, PROMETHEUS_PORT, LocalStack
from orderflow_devtools.status import Status

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = f"http://{LOOPBACK}:{PROMETHEUS_PORT}"
JAEGER = f"http://{LOOPBACK}:{JAEGER_QUERY_PORT}"
ENTITIES = ("Monitoring stack", "Dapr observability", "Resilience policies", "HPA")


def states(status: Status) -> dict[str, str]:
    return {placement.entity: placement.state for placement in status.placements()}


def test_with_nothing_configured_or_running_every_entity_is_at_its_first_state(
    tmp_path: Path,
) -> None:
    """A copy of the repository's run file and Dapr resources with sampling at 0 and no
    Resiliency, no deploy/base (so no HPA), and nothing listening where Prometheus and
    Jaeger would be."""
    shutil.copy(REPO / "dapr.yaml", tmp_path / "dapr.yaml")
    for service in (REPO / "services").iterdir():
        (tmp_path / "services" / service.name).mkdir(parents=True)
    shutil.copytree(REPO / "deploy/dapr", tmp_path / "deploy/dapr")
    (tmp_path / "deploy/dapr/resiliency.yaml").unlink()
    config_path = tmp_path / "deploy/dapr/config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["spec"]["tracing"]["samplingRate"] = "0"
    config_path.write_text(yaml.safe_dump(config))

    with httpx.Client(timeout=2) as http:
        status = Status(tmp_path / "dapr.yaml", "http://127.0.0.1:1", "http://127.0.0.1:1", http)
        placements = status.placements()

    assert {p.entity: p.state for p in placements} == {
        "Monitoring stack": "not deployed",
        "Dapr observability": "disabled",
        "Resilience policies": "not configured",
        "HPA": "not configured",
    }
    assert [p.signal for p in placements] == [
        "Prometheus does not answer at http://127.0.0.1:1/-/ready",
        "Configuration orderflow: samplingRate 0, exporter 127.0.0.1:4317, metrics on",
        f"no Resiliency resource in {tmp_path / 'deploy/dapr'}",
        "no HorizontalPodAutoscaler in deploy/",
    ]


@pytest.fixture(scope="module")
def status() -> Iterator[Status]:
    with httpx.Client(timeout=10) as http:
        yield Status(REPO / "dapr.yaml", PROMETHEUS, JAEGER, http)


@pytest.mark.integration
def test_status_follows_the_stack_through_every_state(
    status: Status, shop: Shop, local_stack: LocalStack, drive: Callable[[], None]
) -> None:
    # A fresh stack: scraped, but no order yet, so no cross-app trace, no invocation
    # metrics and panels without data; policies loaded but not yet acting.
    fresh = {
        "Monitoring stack": "collecting metrics",
        "Dapr observability": "configured",
        "Resilience policies": "applied to services",
        "HPA": "definition created",
    }
    assert eventually(lambda: (now := states(status)) == fresh and now, "a fresh stack", 30)
    hpa = next(p for p in status.placements() if p.entity == "HPA")
    assert hpa.next is not None
    assert hpa.next.startswith("applied: not available in the local stack")

    # One order end to end: a trace across the apps, invocation and pub/sub metrics.
    order = shop.place({"grinder": 1}).json()["order_id"]
    shop.wait_for_status(order, "notified")
    traced = fresh | {"Dapr observability": "reporting metrics"}
    eventually(lambda: states(status) == traced, "one order traced and counted", 30)

    # A retry: the retry policy acted, so it protects.
    shop.set_faults("payments", fail_attempts=1)
    assert shop.place({"grinder": 1}).status_code == 201
    shop.clear_faults("payments")
    protected = traced | {"Resilience policies": "active protection"}
    eventually(lambda: states(status) == protected, "the retry policy acting", 30)

    # Traffic down every path: every local panel has data.
    drive()
    visualized = protected | {"Monitoring stack": "visualizing data"}
    eventually(lambda: states(status) == visualized, "every local panel with data", 60)

    # The command prints the same placements.
    printed = subprocess.run(
        [sys.executable, "-m", "orderflow_devtools", "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split("  ")[0]: line for line in printed.splitlines()[1:] if line[:1] != " "}
    assert sorted(rows) == sorted(ENTITIES)
    for placement in status.placements():
        assert f"{placement.state} ({placement.step}/4)" in rows[placement.entity]

    # A sidecar gone: its target is down, it reports nothing, its policies are unknown.
    local_stack.stack.stop(["payments-dapr"])
    degraded = {
        "Monitoring stack": "deployed",
        "Dapr observability": "active tracing",
        "Resilience policies": "policies defined",
        "HPA": "definition created",
    }
    eventually(lambda: states(status) == degraded, "payments' sidecar missed", 30)

    # Prometheus gone: nothing is known from metrics.
    local_stack.stack.stop(["prometheus"])
    assert states(status) == degraded | {"Monitoring stack": "not deployed"}
