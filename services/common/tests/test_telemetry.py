"""Telemetry: spans and their context across the sidecar boundary, the /metrics exposition
with trace-id exemplars, and trace ids on log lines. Each test has its own SDK providers
and registry, never the process's global ones."""

import io
import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser
from prometheus_client.samples import Sample
from pythonjsonlogger.json import JsonFormatter

from orderflow_common.app import create_service_app
from orderflow_common.deps import DaprDep
from orderflow_common.logs import TraceFilter
from orderflow_common.settings import ServiceSettings
from orderflow_common.sidecar import configure_sdk, save_with_event
from orderflow_common.telemetry import SECONDS_BUCKETS, Telemetry, sdk
from orderflow_common.testing import SIDECAR_HEADERS, TOKENS, FakeSidecar

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CHARGE = "/v1.0/invoke/payments/method/charges"
# A caller's context, as a sidecar sends it: version, trace id, parent span id, sampled.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

router = APIRouter()
# prometheus_client's OpenMetrics functions carry no annotations.
text_string_to_metric_families: Callable[[str], Iterator[Metric]] = (
    parser.text_string_to_metric_families
)
generate_latest: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest


@router.post("/things/{thing_id}")
async def charge_for_thing(thing_id: str, dapr: DaprDep) -> dict[str, str]:
    body = json.dumps({"thing_id": thing_id})
    response = await dapr.invoke_method("payments", "charges", body, http_verb="POST")
    return {"charged": str(response.status_code)}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter) -> Telemetry:
    return sdk("shop", SimpleSpanProcessor(spans), registry=CollectorRegistry())


@pytest.fixture
def sidecar_headers() -> list[httpx.Headers]:
    return []


@pytest.fixture
def client(telemetry: Telemetry, sidecar_headers: list[httpx.Headers]) -> Iterator[TestClient]:
    sidecar = FakeSidecar()

    def charge(request: httpx.Request) -> httpx.Response:
        sidecar_headers.append(request.headers)
        return httpx.Response(201, json={})

    sidecar.responders[CHARGE] = charge
    app = create_service_app(
        "shop", ServiceSettings(APP_PORT=8000, **TOKENS), [router], sidecar.client(), telemetry
    )
    with TestClient(app, headers=SIDECAR_HEADERS) as test_client:
        yield test_client


def by_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind == kind]


def test_a_request_continues_the_callers_trace_and_hands_it_to_the_sidecar(
    client: TestClient, spans: InMemorySpanExporter, sidecar_headers: list[httpx.Headers]
) -> None:
    response = client.post("/things/t-1", headers={"traceparent": TRACEPARENT})

    assert response.json() == {"charged": "201"}
    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.name == "POST /things/{thing_id}"
    assert format_trace_id(server.context.trace_id) == TRACE_ID
    assert server.parent is not None
    assert format_span_id(server.parent.span_id) == PARENT_ID
    # The SDK's HTTP invocation has no client span: the sidecar continues the server's.
    [headers] = sidecar_headers
    server_id = format_span_id(server.context.span_id)
    assert headers["traceparent"] == f"00-{TRACE_ID}-{server_id}-01"


def test_probes_and_scrapes_are_not_traced(client: TestClient, spans: InMemorySpanExporter) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200

    assert by_kind(spans, SpanKind.SERVER) == []


def test_metrics_carry_the_route_template_and_a_trace_id_exemplar(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.post("/things/t-1", headers={"traceparent": TRACEPARENT})
    client.post("/things/t-2", headers={"traceparent": TRACEPARENT})

    response = client.get("/metrics", headers={"accept": OPENMETRICS})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    samples = samples_of(response.text, "http_server_request_duration_seconds")
    labels = {
        "http_request_method": "POST",
        "http_route": "/things/{thing_id}",
        "http_response_status_code": "200",
        "network_protocol_version": "1.1",
        "url_scheme": "http",
    }
    [count] = [s for s in samples if s.name.endswith("_count")]
    assert (count.labels, count.value) == (labels, 2)
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(SECONDS_BUCKETS) + 1
    exemplars = [s.exemplar for s in buckets if s.exemplar is not None]
    assert exemplars
    server_spans = {format_span_id(s.context.span_id) for s in by_kind(spans, SpanKind.SERVER)}
    for exemplar in exemplars:
        assert exemplar.labels["trace_id"] == TRACE_ID
        assert exemplar.labels["span_id"] in server_spans


def test_an_exemplar_stays_until_a_newer_one_replaces_it(client: TestClient) -> None:
    client.post("/things/t-1", headers={"traceparent": TRACEPARENT})

    scrapes = [client.get("/metrics", headers={"accept": OPENMETRICS}).text for _ in range(2)]

    first, second = (
        [s.exemplar for s in samples_of(text, "http_server_request_duration_seconds")]
        for text in scrapes
    )
    assert any(first)
    assert first == second


def test_plain_text_exposition_without_openmetrics(client: TestClient) -> None:
    client.post("/things/t-1")

    response = client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    assert "http_server_request_duration_seconds_bucket{" in response.text
    assert "trace_id" not in response.text


def test_business_metrics_get_prometheus_names_and_units(telemetry: Telemetry) -> None:
    meter = telemetry.meter_provider.get_meter("test")
    meter.create_counter("orderflow.orders.failed", "{order}").add(2, {"reason": "declined"})
    meter.create_up_down_counter("shop.busy", "{request}").add(3)
    work = meter.create_histogram(
        "orderflow.fulfillment.work", "s", explicit_bucket_boundaries_advisory=SECONDS_BUCKETS
    )
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        work.record(0.02)

    families = {
        family.name: family for family in text_string_to_metric_families(exposition(telemetry))
    }

    failed = families["orderflow_orders_failed"]
    assert (failed.type, failed.samples[0].name) == ("counter", "orderflow_orders_failed_total")
    assert (failed.samples[0].labels, failed.samples[0].value) == ({"reason": "declined"}, 2)
    assert families["shop_busy"].type == "gauge"
    assert families["shop_busy"].samples[0].value == 3
    histogram = families["orderflow_fulfillment_work_seconds"]
    assert (histogram.type, histogram.unit) == ("histogram", "seconds")
    [with_exemplar] = [s for s in histogram.samples if s.exemplar is not None]
    # 0.02 s falls in (0.01, 0.025]: the exemplar sits on that bucket.
    assert with_exemplar.labels == {"le": "0.025"}
    assert with_exemplar.exemplar is not None
    trace_id = format_trace_id(span.get_span_context().trace_id)
    assert with_exemplar.exemplar.labels["trace_id"] == trace_id


def test_a_label_some_points_lack_is_empty_on_them(telemetry: Telemetry) -> None:
    counter = telemetry.meter_provider.get_meter("test").create_counter("shop.answers")
    counter.add(1, {"status": "200"})
    counter.add(1, {"status": "500", "error": "timeout"})

    [family] = text_string_to_metric_families(exposition(telemetry))

    assert sorted((s.labels.get("error", ""), s.labels["status"]) for s in family.samples) == [
        ("", "200"),
        ("timeout", "500"),
    ]


async def test_an_outbox_event_carries_the_current_trace(telemetry: Telemetry) -> None:
    sidecar = FakeSidecar()
    tracer = telemetry.tracer_provider.get_tracer("test")
    settings = ServiceSettings(APP_PORT=8000, **TOKENS)
    configure_sdk(settings)
    dapr = sidecar.client()
    await save_with_event(dapr, "store", "k", {}, event_type="done", event={"a": 1})
    with tracer.start_as_current_span("handler") as span:
        await save_with_event(dapr, "store", "k", {}, event_type="done", event={"a": 1})

    untraced, traced = (call.body["operations"][0]["request"]["metadata"] for call in sidecar.calls)
    assert untraced == {"type": "done"}
    context = span.get_span_context()
    ids = f"{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}"
    assert traced == {"type": "done", "traceparent": f"00-{ids}-{context.trace_flags:02x}"}


def test_log_lines_in_a_span_carry_its_ids(telemetry: Telemetry) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(message)s"))
    handler.addFilter(TraceFilter())
    logger = logging.getLogger("test_telemetry.lines")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = telemetry.tracer_provider.get_tracer("test")

    logger.warning("before")
    with tracer.start_as_current_span("request") as span:
        logger.warning("during")

    before, during = (json.loads(line) for line in stream.getvalue().splitlines())
    assert before == {"message": "before"}
    context = span.get_span_context()
    assert during == {
        "message": "during",
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
    }


def exposition(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def samples_of(text: str, family_name: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
    ]
