"""The HPAs evaluated by the real HPA controller, on CPU that metrics-server reads from
kwok's simulated kubelet. fulfillment's app container is made to use ten times its CPU
request: the HPA scales out by what its behavior allows (1 -> 5 -> 6, doubling or +4 pods
per 15s), holds at maxReplicas, and once the CPU drops scales in one pod per period after
its stabilization window. The sequence is read from the controller's own events."""

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderflow_devtools.cluster import LocalCluster, usage
from orderflow_devtools.observe import eventually
from orderflow_devtools.status import Status

pytestmark = pytest.mark.kubernetes

REPO = Path(__file__).resolve().parents[2]
OVERLAY = Path(__file__).parent / "autoscaling"
NAMESPACE = "orderflow"


def _fulfillment_cpu(cluster: LocalCluster, cpu: str) -> None:
    """fulfillment's app container uses ``cpu``; every other container 1m."""
    cluster.apply([usage("baseline", cpu="1m", memory="16Mi", app_cpu={"fulfillment": cpu})])


def _hpa(cluster: LocalCluster, name: str) -> dict[str, Any]:
    with cluster.http() as http:
        path = f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/{name}"
        hpa: dict[str, Any] = http.get(path).raise_for_status().json()
    return hpa


def _condition(hpa: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in hpa["status"].get("conditions", []) if c["type"] == kind)


def _rescales(cluster: LocalCluster, name: str) -> list[int]:
    """The new sizes of the controller's SuccessfulRescale events for HPA ``name``, in the
    order the API server stored them."""
    events = cluster.get(
        "events",
        f"--namespace={NAMESPACE}",
        f"--field-selector=involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={name},reason=SuccessfulRescale",
    )["items"]
    events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    sizes = []
    for event in events:
        assert event["source"]["component"] == "horizontal-pod-autoscaler"
        assert event["count"] == 1
        found = re.match(r"New size: (\d+); reason: ", event["message"])
        assert found, event["message"]
        sizes.append(int(found.group(1)))
    return sizes


def test_fulfillment_scales_out_holds_and_scales_back(fresh: LocalCluster) -> None:
    _fulfillment_cpu(fresh, "1m")
    fresh.kubectl("apply", "--server-side", "-k", str(OVERLAY))
    fresh.rolled_out(NAMESPACE)
    with httpx.Client(timeout=10) as http:
        status = Status(REPO / "dapr.yaml", "http://127.0.0.1:1", "http://127.0.0.1:1", http,
                        fresh.kubeconfig)  # fmt: skip
        # Applied, with metrics, at the minimum: not scaling.
        eventually(
            lambda: (
                all(
                    _hpa(fresh, name)["status"].get("currentMetrics")
                    for name in ("fulfillment", "storefront")
                )
                and status.hpa().state == "applied"
            ),
            "both HPAs reading CPU, at their minimum",
            60,
        )

        _fulfillment_cpu(fresh, "1000m")
        at_max = eventually(
            lambda: (
                (h := _hpa(fresh, "fulfillment"))["status"].get("currentReplicas") == 6
                and _condition(h, "ScalingLimited")["reason"] == "TooManyReplicas"
                and h
            ),
            "fulfillment at maxReplicas",
            120,
        )
        assert at_max["status"]["desiredReplicas"] == 6
        assert _condition(at_max, "ScalingLimited")["message"] == (
            "the desired replica count is more than the maximum replica count"
        )
        assert _rescales(fresh, "fulfillment") == [5, 6]
        assert len(fresh.rolled_out(NAMESPACE, timeout=60)) == 7
        scaling = status.hpa()
        assert scaling.state == "actively scaling"
        assert "fulfillment 6/6" in scaling.signal

        _fulfillment_cpu(fresh, "1m")
        eventually(
            lambda: _hpa(fresh, "fulfillment")["status"].get("currentReplicas") == 1,
            "fulfillment back at minReplicas",
            120,
        )

    assert _rescales(fresh, "fulfillment") == [5, 6, 5, 4, 3, 2, 1]
    assert _rescales(fresh, "storefront") == []
    assert _hpa(fresh, "storefront")["status"]["currentReplicas"] == 1
