"""OpenTelemetry for every service, set up in code: traces over OTLP, metrics on the app's
own ``GET /metrics`` for Prometheus, both from the same SDK.

:func:`configure` installs the SDK once per process (``run`` calls it before serving);
:func:`instrument` adds the FastAPI instrumentation and the ``/metrics`` route to an app
(``create_service_app`` calls it). The Dapr adapter instruments its own httpx client, so
every call to the sidecar carries ``traceparent`` and Dapr continues the trace through
service invocation and pub/sub; Dapr delivers each event with the ``traceparent`` header
of its own delivery span, so a subscriber's request continues the publisher's trace.

Every setting is a standard ``OTEL_*`` variable that the SDK reads itself; nothing here
reads one by hand, so the deployment's environment (``dapr.yaml`` ``common.env`` locally,
the ``service-env`` ConfigMap on Kubernetes) is the one place to change them:

- ``OTEL_EXPORTER_OTLP_ENDPOINT``: where spans go (Jaeger's OTLP gRPC receiver);
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: default ``parentbased_always_on``,
  so a request that arrives with a sampled ``traceparent`` from a sidecar is always kept;
- ``OTEL_SEMCONV_STABILITY_OPT_IN=http``: ``http.server.request.duration`` in seconds;
  without it the instrumentation records the old milliseconds metric;
- ``OTEL_METRICS_EXEMPLAR_FILTER``: default ``trace_based``, an exemplar per sampled span;
- ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_SDK_DISABLED=true`` turns traces and metrics off.

``service.name`` is always the service's name (its Dapr app id): one name everywhere.
https://opentelemetry.io/docs/languages/sdk-configuration/
"""

import bisect
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, Header, Response
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    DataPointT,
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Metric as OtelMetric
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id
from opentelemetry.util.types import Attributes
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric as PrometheusMetric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

# Probes and scrapes every few seconds would be most of the traces and RED series.
EXCLUDED_URLS = "/healthz,/metrics"
# Buckets for latencies in seconds, the same as the HTTP semantic conventions advise for
# http.server.request.duration, so that our own histograms line up with it.
# https://opentelemetry.io/docs/specs/semconv/http/http-metrics/#metric-httpserverrequestduration
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# The OTel units that become a Prometheus name suffix; annotations like {order} do not.
# https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/#metric-metadata-1
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
# How prometheus_client writes a bucket's bound (1.0, +Inf), so ours match its own.
_go_float: Callable[[float], str] = floatToGoString


@dataclass(frozen=True)
class Telemetry:
    """Where an app's instrumentation reports: by default the process's global providers,
    which :func:`configure` installs (until then the API hands out proxies that follow the
    SDK once it is installed, and that do nothing without it, as in unit tests)."""

    tracer_provider: trace.TracerProvider = field(default_factory=trace.get_tracer_provider)
    meter_provider: metrics.MeterProvider = field(default_factory=metrics.get_meter_provider)
    registry: CollectorRegistry = REGISTRY


def sdk(
    service: str,
    span_processor: SpanProcessor | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> Telemetry:
    """The SDK's providers for ``service``: spans through ``span_processor`` (by default
    batched to OTLP), metrics into ``registry`` for ``GET /metrics``."""
    resource = Resource.create({SERVICE_NAME: service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(span_processor or BatchSpanProcessor(OTLPSpanExporter()))
    reader = PrometheusReader()
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        # Request and response body sizes are not part of RED and would double the
        # series count. https://opentelemetry.io/docs/specs/otel/metrics/sdk/#view
        views=[View(instrument_name="*.body.size", aggregation=DropAggregation())],
    )
    registry.register(_Scrape(reader))
    return Telemetry(tracer_provider, meter_provider, registry)


def configure(service: str) -> None:
    """Install the SDK as this process's global providers: once, before serving. They
    flush what is still buffered when the process exits."""
    telemetry = sdk(service)
    trace.set_tracer_provider(telemetry.tracer_provider)
    metrics.set_meter_provider(telemetry.meter_provider)


def instrument(app: FastAPI, telemetry: Telemetry) -> None:
    """Trace every request and record the HTTP server metrics, labelled with the route
    template (``/orders/{order_id}``), and serve the registry at ``GET /metrics``.
    https://opentelemetry-python-contrib.readthedocs.io/en/latest/instrumentation/fastapi/fastapi.html
    """
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=EXCLUDED_URLS,
        # One span per request, not three: no child spans for reading the body and
        # writing the answer.
        exclude_spans=["receive", "send"],
    )

    # A route rather than prometheus_client's make_asgi_app: mounted, that app answers
    # GET /metrics with a redirect to /metrics/. The encoder is still the library's, chosen
    # from the Accept header: Prometheus asks for OpenMetrics, the only format with exemplars.
    # https://prometheus.github.io/client_python/exporting/http/fastapi-gunicorn/
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(accept: Annotated[str, Header()] = "") -> Response:
        encode, content_type = choose_encoder(accept)
        return Response(encode(telemetry.registry), media_type=content_type)


class PrometheusReader(MetricReader):
    """Hands the SDK's metrics to prometheus_client at each scrape, trace-id exemplars
    included.

    Why not opentelemetry-exporter-prometheus: its reader (0.66b2) drops exemplars; the
    work to add them is still open (open-telemetry/opentelemetry-python#2407, PR #4178).
    prometheus_client, Prometheus' own library, renders exemplars in OpenMetrics, so this
    reader only translates: names and units by the OTel-Prometheus compatibility spec,
    cumulative sums and histograms as they are, and each histogram bucket's exemplar (the
    SDK's aligned-bucket reservoir keeps the last sampled measurement per bucket, with its
    trace and span id). An exemplar stays on its bucket until a newer one replaces it,
    as prometheus_client's own histograms do, since the SDK empties its reservoir at each
    collection.
    https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/
    https://prometheus.github.io/client_python/instrumenting/exemplars/
    """

    def __init__(self) -> None:
        super().__init__()
        self._data: MetricsData | None = None
        self._exemplars: dict[tuple[str, tuple[str, ...], int], Exemplar] = {}
        self._lock = threading.Lock()

    # The two methods a MetricReader must have, with the SDK's signatures.
    def _receive_metrics(
        self,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,  # noqa: ARG002
        **kwargs: Any,  # noqa: ARG002
    ) -> None:
        self._data = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:  # noqa: ARG002
        self._data = None

    def scrape(self) -> list[PrometheusMetric]:
        """Collect from the SDK now and translate what it gives."""
        with self._lock:
            self.collect()
            data, self._data = self._data, None
            return [] if data is None else list(self._families(data))

    def _families(self, data: MetricsData) -> Iterator[PrometheusMetric]:
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    family = self._family(metric)
                    if family is not None:
                        yield family

    def _family(self, metric: OtelMetric) -> PrometheusMetric | None:
        name = re.sub(r"[^A-Za-z0-9_:]", "_", metric.name)
        unit = _UNITS.get(metric.unit or "", "")
        doc = metric.description or metric.name
        data = metric.data
        if isinstance(data, Histogram):
            keys = _label_keys(data.data_points)
            histogram = HistogramMetricFamily(name, doc, labels=_label_names(keys), unit=unit)
            for point in data.data_points:
                values = _label_values(keys, point.attributes)
                buckets = self._buckets(histogram.name, values, point)
                histogram.add_metric(values, buckets, point.sum)
            return histogram
        if isinstance(data, Sum | Gauge):
            # A monotonic sum is a counter; an up-down counter (active requests), a gauge.
            monotonic = isinstance(data, Sum) and data.is_monotonic
            family = CounterMetricFamily if monotonic else GaugeMetricFamily
            keys = _label_keys(data.data_points)
            numbers = family(name, doc, labels=_label_names(keys), unit=unit)
            for number in data.data_points:
                numbers.add_metric(_label_values(keys, number.attributes), number.value)
            return numbers
        return None  # exponential histograms: none is configured here

    def _buckets(
        self, name: str, labels: list[str], point: HistogramDataPoint
    ) -> list[tuple[str, float] | tuple[str, float, Exemplar]]:
        for sampled in point.exemplars:
            if sampled.trace_id is None or sampled.span_id is None:
                continue
            # OTel buckets hold (previous bound, bound]; le is inclusive too.
            index = bisect.bisect_left(point.explicit_bounds, sampled.value)
            self._exemplars[(name, tuple(labels), index)] = Exemplar(
                {
                    "trace_id": format_trace_id(sampled.trace_id),
                    "span_id": format_span_id(sampled.span_id),
                },
                sampled.value,
                sampled.time_unix_nano / 1e9,
            )
        bounds = [*(_go_float(bound) for bound in point.explicit_bounds), "+Inf"]
        buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
        for index, (bound, count) in enumerate(
            zip(bounds, itertools.accumulate(point.bucket_counts), strict=True)
        ):
            exemplar = self._exemplars.get((name, tuple(labels), index))
            buckets.append((bound, count) if exemplar is None else (bound, count, exemplar))
        return buckets


class _Scrape(Collector):
    """What the Prometheus registry calls at each scrape."""

    def __init__(self, reader: PrometheusReader) -> None:
        self._reader = reader

    def describe(self) -> list[PrometheusMetric]:
        # Without this, registering would collect once just to learn the names.
        return []

    def collect(self) -> list[PrometheusMetric]:
        return self._reader.scrape()


def _label_keys(points: Sequence[DataPointT]) -> list[str]:
    """Every attribute any point has: Prometheus needs one label set per family, and an
    empty value is a missing label to it (error.type appears only on errors)."""
    return sorted({key for point in points for key in point.attributes or {}})


def _label_names(keys: list[str]) -> list[str]:
    return [re.sub(r"[^A-Za-z0-9_]", "_", key) for key in keys]


def _label_values(keys: list[str], attributes: Attributes) -> list[str]:
    return [str((attributes or {}).get(key, "")) for key in keys]
