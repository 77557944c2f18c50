"""Telemetry against the live backends: after a short load on the local stack, Prometheus
scrapes every app and sidecar, one order is one trace in Jaeger across all five services,
latency exemplars point at traces that Jaeger holds, and log lines carry their trace id.

The order under study is placed with a ``traceparent`` the test chose, as a traced
client would send it, so its trace id is known without searching."""

import json
import secrets
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest

from orderflow_devtools.client import Shop
from orderflow_devtools.observe import eventually
from orderflow_devtools.stack import JAEGER_QUERY_PORT, LOOPBACK, PROMETHEUS_PORT, LocalStack

pytestmark = pytest.mark.integration

PROMETHEUS = f"http://{LOOPBACK}:{PROMETHEUS_PORT}"
JAEGER = f"http://{LOOPBACK}:{JAEGER_QUERY_PORT}"
SERVICES = {"storefront", "inventory", "payments", "fulfillment", "notifications"}
ITEMS = {"grinder": 1}
LOAD_ORDERS = 10
# Spans reach Jaeger within the batch delays of the SDK and of daprd (5 s each).
TRACE_TIMEOUT = 30.0
SERIES_BUDGET = 1000

Json = dict[str, Any]


@dataclass(frozen=True)
class TracedOrder:
    order_id: str
    trace_id: str
    # The span id of the (imaginary) client span the order's trace hangs from.
    client_span_id: str
    started: float


@pytest.fixture(scope="module")
def traced_order(shop: Shop) -> TracedOrder:
    """A short load (orders, one declined card, one unknown order), then one order with
    our trace context, followed until its customer is notified."""
    started = time.time()
    shop.set_stock("grinder", 1000)
    for _ in range(LOAD_ORDERS):
        assert shop.place(ITEMS).status_code == 201
    assert shop.place(ITEMS, payment_token="tok_declined").status_code == 402
    assert shop.http.get(shop.url("storefront", "/orders/no-such-order")).status_code == 404

    trace_id, client_span_id = secrets.token_hex(16), secrets.token_hex(8)
    response = shop.http.post(
        shop.url("storefront", "/orders"),
        json={"customer_id": "c-traced", "items": [{"sku": "grinder", "quantity": 1}]},
        headers={"traceparent": f"00-{trace_id}-{client_span_id}-01"},
    )
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    shop.wait_for_status(order_id, "notified")
    return TracedOrder(order_id, trace_id, client_span_id, started)


def prometheus(path: str, **params: str | float) -> Any:
    response = httpx.get(f"{PROMETHEUS}/api/v1/{path}", params=params, timeout=10.0)
    body = response.raise_for_status().json()
    assert body["status"] == "success", body
    return body["data"]


def jaeger_trace(trace_id: str) -> Json | None:
    """The trace as Jaeger's query API returns it, or None while it has none of it."""
    response = httpx.get(f"{JAEGER}/api/traces/{trace_id}", timeout=10.0)
    if response.status_code == 404:
        return None
    [found] = response.raise_for_status().json()["data"]
    return dict(found)


@pytest.mark.usefixtures("traced_order")  # after the load
def test_prometheus_scrapes_every_app_and_every_sidecar(local_stack: LocalStack) -> None:
    expected = {(job, app_id) for job in ("apps", "dapr-sidecars") for app_id in local_stack.apps}

    def targets_up() -> dict[tuple[str, str], str]:
        result = prometheus("query", query='up{job=~"apps|dapr-sidecars"}')["result"]
        return {(r["metric"]["job"], r["metric"]["app_id"]): r["value"][1] for r in result}

    up = eventually(
        lambda: (
            (seen := targets_up()).keys() == expected
            and all(v == "1" for v in seen.values())
            and seen
        ),
        "every app and sidecar target up",
    )
    assert up == dict.fromkeys(expected, "1")


@pytest.mark.usefixtures("traced_order")
def test_every_target_stays_within_its_series_budget(local_stack: LocalStack) -> None:
    """Route templates, fixed label values and Dapr's path matching keep each target's
    series bounded: well under 1,000 whatever the number of orders."""
    query = 'count by (job, app_id) ({job=~"apps|dapr-sidecars"})'
    result = prometheus("query", query=query)["result"]
    series = {(r["metric"]["job"], r["metric"]["app_id"]): int(r["value"][1]) for r in result}

    assert len(series) == 2 * len(local_stack.apps)
    assert max(series.values()) < SERIES_BUDGET, series


@pytest.mark.usefixtures("traced_order")
def test_business_metrics_count_the_load_exactly() -> None:
    """What the dashboards and alerts read, under their exact names: the load's 11 paid
    orders and one declined card; every failure series exists at 0 from the start."""
    placed = LOAD_ORDERS + 1
    expected = {
        'orderflow_orders_placed_total{app_id="storefront"}': placed,
        'orderflow_orders_failed_total{reason="payment declined"}': 1,
        'orderflow_orders_failed_total{reason="payments unavailable"}': 0,
        "orderflow_payments_declined_total": 1,
        "orderflow_payments_failed_total": 0,
        'orderflow_notifications_sent_total{event_type="order-placed"}': placed,
        'orderflow_notifications_sent_total{event_type="order-shipped"}': placed,
        'sum(orderflow_dead_letters_total{event_type=~"order-.*|customer-notified"})': 0,
        "orderflow_fulfillment_work_seconds_count": placed,
    }

    def values() -> dict[str, float | None]:
        found: dict[str, float | None] = {}
        for query in expected:
            result = prometheus("query", query=query)["result"]
            found[query] = float(result[0]["value"][1]) if len(result) == 1 else None
        return found

    try:
        eventually(lambda: values() == expected, "the business metrics in Prometheus")
    except TimeoutError:
        assert values() == expected  # says which differ


def test_one_order_is_one_trace_across_all_five_services(traced_order: TracedOrder) -> None:
    def complete(found: Json | None) -> Json:
        """The trace once its last step (storefront recording "notified") is in and every
        span's parent has arrived too."""
        if found is None:
            return {}
        ids = {span["spanID"] for span in found["spans"]}
        names = {span["operationName"] for span in found["spans"]}
        orphans = [span for span in found["spans"] if parent_of(span) not in ids]
        done = "POST /events/customer-notified" in names and len(orphans) == 1
        return found if done else {}

    try:
        found = eventually(
            lambda: complete(jaeger_trace(traced_order.trace_id)),
            "the order's whole trace in Jaeger",
            TRACE_TIMEOUT,
        )
    except TimeoutError:
        # The assertions below then say what is missing.
        last = jaeger_trace(traced_order.trace_id)
        assert last is not None, f"Jaeger has no trace {traced_order.trace_id}"
        found = last
    spans = {span["spanID"]: span for span in found["spans"]}
    service = {
        span_id: found["processes"][span["processID"]]["serviceName"]
        for span_id, span in spans.items()
    }

    assert {span["traceID"] for span in spans.values()} == {traced_order.trace_id}
    assert set(service.values()) == SERVICES
    # Parent links intact: every span's parent is in the trace, but for the storefront
    # span that continues the client's context.
    parents = {span_id: parent_of(span) for span_id, span in spans.items()}
    outside = {span_id for span_id, parent in parents.items() if parent not in spans}
    assert [(service[s], spans[s]["operationName"], parents[s]) for s in outside] == [
        ("storefront", "POST /orders", traced_order.client_span_id)
    ]
    # Each hop between services: (caller, callee, the callee's first span).
    hops = {
        (service[parent], service[span_id], spans[span_id]["operationName"])
        for span_id, parent in parents.items()
        if parent in spans and service[parent] != service[span_id]
    }
    invocations = {(a, b) for a, b, name in hops if name.startswith("CallLocal/")}
    deliveries = {(a, b) for a, b, name in hops if name.startswith("pubsub/")}
    assert invocations == {("storefront", "inventory"), ("storefront", "payments")}
    # order-placed through the storefront outbox, order-shipped published by
    # fulfillment, customer-notified by notifications: each to the subscribers of its
    # own topic (one topic per event type).
    assert deliveries == {
        ("storefront", "fulfillment"),
        ("storefront", "notifications"),
        ("fulfillment", "notifications"),
        ("fulfillment", "storefront"),
        ("notifications", "storefront"),
    }


def test_latency_exemplars_point_at_traces_in_jaeger(traced_order: TracedOrder) -> None:
    def exemplars() -> list[Json]:
        data = prometheus(
            "query_exemplars",
            query='http_server_request_duration_seconds_bucket{job="apps"}',
            start=traced_order.started - 60,
            end=time.time() + 60,
        )
        return [
            {**series["seriesLabels"], **exemplar["labels"]}
            for series in data
            for exemplar in series["exemplars"]
        ]

    def with_ours() -> list[Json]:
        seen = exemplars()
        return seen if any(e["trace_id"] == traced_order.trace_id for e in seen) else []

    # The traced order is the last POST /orders, so its exemplar is on its bucket.
    found = eventually(with_ours, "the traced order's exemplar in Prometheus")
    ours = [e for e in found if e["trace_id"] == traced_order.trace_id]
    # The order is the last request on each route it used, so each service's latest
    # exemplar there is the order's.
    assert {e["app_id"] for e in ours} == SERVICES
    assert ("storefront", "POST", "/orders") in {
        (e["app_id"], e["http_request_method"], e.get("http_route")) for e in ours
    }
    assert {e["app_id"] for e in found} == SERVICES
    for trace_id in sorted({e["trace_id"] for e in found}):
        eventually(partial(jaeger_trace, trace_id), f"trace {trace_id} in Jaeger")


def test_log_lines_of_the_order_carry_its_trace_id(
    traced_order: TracedOrder, local_stack: LocalStack
) -> None:
    """Every line any service wrote about the order: storefront's, inventory's and
    payments' in the request, fulfillment's and notifications' after pub/sub hops."""

    def about_order(app_id: str) -> list[Json]:
        lines = (parse(line) for line in local_stack.stack.lines(app_id))
        return [line for line in lines if line and line.get("order_id") == traced_order.order_id]

    lines = {app_id: about_order(app_id) for app_id in sorted(SERVICES)}

    assert {app_id for app_id, found in lines.items() if found} == SERVICES
    assert {
        (app_id, line["message"], line.get("trace_id"))
        for app_id, found in lines.items()
        for line in found
    } == {
        (app_id, line["message"], traced_order.trace_id)
        for app_id, found in lines.items()
        for line in found
    }
    assert all(len(line["span_id"]) == 16 for found in lines.values() for line in found)


def parent_of(span: Json) -> str | None:
    refs = [ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def parse(line: str) -> Json | None:
    try:
        parsed = json.loads(line)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
