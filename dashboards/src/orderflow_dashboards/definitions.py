"""The five dashboards. Metric names and labels are those the local stack scrapes: the
apps' OpenTelemetry HTTP metrics and business counters (job ``apps``), the sidecars'
``dapr_*`` metrics (job ``dapr-sidecars``), both labelled ``app_id``; on Kubernetes also
kube-state-metrics and cAdvisor. https://docs.dapr.io/operations/observability/metrics/metrics-overview/
"""

from grafana_foundation_sdk.builders.dashboard import Dashboard

from orderflow_dashboards.panels import (
    KUBERNETES_ONLY,
    NEEDS_LOCUST_EXPORTER,
    RATE,
    new_dashboard,
    rate,
    stat_panel,
    state_panel,
    timeseries_panel,
    variable,
)

APP = 'app_id=~"$app_id"'
# The SLI leaves out Prometheus' scrapes and the health checks, as the recording rules do.
SERVED = f'{APP}, http_route!~"/metrics|/healthz"'
HTTP = "http_server_request_duration_seconds"
COUNT = f"{HTTP}_count"
BUCKET = f"{HTTP}_bucket"
SERVER_ERROR = 'http_response_status_code=~"5.."'
APP_VARIABLE = variable("app_id", "Service", "label_values(up, app_id)")


def service_overview() -> Dashboard:
    by_route = "app_id, http_route"
    return (
        new_dashboard(
            "orderflow-services",
            "orderflow / Service overview",
            "RED per service and route from each app's OpenTelemetry HTTP metrics, the SLO"
            " burn rates, and the business counters.",
        )
        .with_variable(APP_VARIABLE)
        .with_panel(
            timeseries_panel(
                "Request rate by route",
                "Requests each service serves per second, by route template"
                " (http.server.request.duration's count).",
                "reqps",
                (
                    f"sum by ({by_route}) (rate({HTTP}_count{{{SERVED}}}[{RATE}]))",
                    "{{app_id}} {{http_route}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Error ratio by route (5xx)",
                "Share of requests answered with a 5xx, by route; 0 for routes without errors."
                " A 4xx (a declined card, too little stock) is the client's answer, not an error.",
                "percentunit",
                (
                    f"(sum by ({by_route}) ({rate(COUNT, SERVED + ', ' + SERVER_ERROR)})"
                    f" or sum by ({by_route}) ({rate(COUNT, SERVED)}) * 0)"
                    f" / sum by ({by_route}) ({rate(COUNT, SERVED)})",
                    "{{app_id}} {{http_route}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Latency p95 by route",
                "95th percentile of request duration by route. The dots are exemplars: click"
                " one to open its trace in Jaeger.",
                "s",
                (
                    f"histogram_quantile(0.95, sum by ({by_route}, le) ({rate(BUCKET, SERVED)}))",
                    "{{app_id}} {{http_route}}",
                ),
                exemplars=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Responses by status code",
                "Responses per second by service and HTTP status code.",
                "reqps",
                (
                    f"sum by (app_id, http_response_status_code) ({rate(COUNT, SERVED)})",
                    "{{app_id}} {{http_response_status_code}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Error budget burn rate (1h)",
                "How fast each service spends its 30-day error budget (SLO: 99.5% of requests"
                " without a 5xx): 1 spends it in 30 days; ErrorBudgetBurnFast pages at 14.4."
                " Recording rule app_id:slo_errors:burn_rate1h.",
                "short",
                (f"app_id:slo_errors:burn_rate1h{{{APP}}}", "{{app_id}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Latency budget burn rate (1h)",
                "How fast each service spends its latency budget (SLO: 99% of requests within"
                " 500 ms): 1 spends it in 30 days; LatencyBudgetBurnFast pages at 14.4."
                " Recording rule app_id:slo_latency_slow:burn_rate1h.",
                "short",
                (f"app_id:slo_latency_slow:burn_rate1h{{{APP}}}", "{{app_id}}"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Orders placed and failed",
                "Orders storefront accepted and paid, and orders that failed, by reason"
                " (declined card, payments unavailable, ...).",
                "ops",
                (f"sum(rate(orderflow_orders_placed_total{{{APP}}}[{RATE}]))", "placed"),
                (
                    f"sum by (reason) (rate(orderflow_orders_failed_total{{{APP}}}[{RATE}]))",
                    "failed: {{reason}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Payments declined and failed",
                "Charges payments declined (a business answer: a 200 with status declined, which"
                " storefront answers 402) and charges that failed (faults, outages).",
                "ops",
                (f"sum(rate(orderflow_payments_declined_total{{{APP}}}[{RATE}]))", "declined"),
                (f"sum(rate(orderflow_payments_failed_total{{{APP}}}[{RATE}]))", "failed"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Notifications sent",
                "Notifications sent per second, by the event that caused them.",
                "ops",
                (
                    f"sum by (event_type) ({rate('orderflow_notifications_sent_total', APP)})",
                    "{{event_type}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Fulfillment work per order (p95)",
                "95th percentile of the CPU work fulfillment spends on one order: what the"
                " autoscaler reacts to. The dots are exemplars linking to the trace.",
                "s",
                (
                    "histogram_quantile(0.95, sum by (le) (rate("
                    f"orderflow_fulfillment_work_seconds_bucket{{{APP}}}[{RATE}])))",
                    "p95",
                ),
                exemplars=True,
            )
        )
    )


def dapr() -> Dashboard:
    return (
        new_dashboard(
            "orderflow-dapr",
            "orderflow / Dapr invocation and pub/sub",
            "What the sidecars see: their HTTP API, service invocation between apps, and"
            " pub/sub deliveries (success, retry, drop) and publishes.",
        )
        .with_variable(APP_VARIABLE)
        .with_panel(
            timeseries_panel(
                "Sidecar API requests by status",
                "Requests each app makes to its own sidecar's HTTP API (state, publish, invoke),"
                " by status. Paths are left out to bound cardinality (Configuration"
                " increasedCardinality: false).",
                "reqps",
                (
                    f"sum by (app_id, status) ({rate('dapr_http_server_request_count', APP)})",
                    "{{app_id}} {{status}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Sidecar API latency p95",
                "95th percentile of the sidecar's HTTP API latency, as the app sees it.",
                "ms",
                (
                    "histogram_quantile(0.95, sum by (app_id, le) (rate("
                    f"dapr_http_server_latency_bucket{{{APP}}}[{RATE}])))",
                    "{{app_id}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Service invocation: requests sent",
                "Invocations each sidecar sends, by destination app.",
                "reqps",
                (
                    "sum by (app_id, dst_app_id) (rate("
                    f"dapr_runtime_service_invocation_req_sent_total{{{APP}}}[{RATE}]))",
                    "{{app_id}} → {{dst_app_id}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Service invocation: responses by status",
                "Responses the calling sidecar receives, by callee and status: business answers"
                " (a declined card, an unknown SKU) are 200s; 5xx and timeouts are the failures"
                " the resiliency policies act on.",
                "reqps",
                (
                    "sum by (app_id, src_app_id, status) (rate("
                    f"dapr_runtime_service_invocation_res_recv_total{{{APP}}}[{RATE}]))",
                    "{{app_id}} ← {{src_app_id}} {{status}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Service invocation: requests received",
                "Invocations each callee's sidecar receives, by calling app.",
                "reqps",
                (
                    "sum by (app_id, src_app_id) (rate("
                    f"dapr_runtime_service_invocation_req_recv_total{{{APP}}}[{RATE}]))",
                    "{{src_app_id}} → {{app_id}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Service invocation latency p95",
                "95th percentile of the time from sending an invocation to its response, by"
                " callee, retries included.",
                "ms",
                (
                    "histogram_quantile(0.95, sum by (app_id, src_app_id, le) (rate("
                    f"dapr_runtime_service_invocation_res_recv_latency_ms_bucket{{{APP}}}[{RATE}])))",
                    "{{app_id}} ← {{src_app_id}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Pub/sub deliveries by outcome",
                "Events each subscriber's sidecar delivered to its app, by topic and outcome:"
                " success, retry (the app asked for a redelivery or failed) and drop (gone to"
                " the dead-letter topic or discarded).",
                "ops",
                (
                    "sum by (app_id, topic, process_status) (rate("
                    f"dapr_component_pubsub_ingress_count{{{APP}}}[{RATE}]))",
                    "{{app_id}} {{topic}} {{process_status}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Pub/sub publishes (egress)",
                "Events apps publish through the sidecar's publish API, by topic and success."
                " Events that leave through the transactional outbox (order-placed,"
                " order-shipped) are not counted here by Dapr; see state transactions.",
                "ops",
                (
                    "sum by (app_id, topic, success) (rate("
                    f"dapr_component_pubsub_egress_count{{{APP}}}[{RATE}]))",
                    "{{app_id}} {{topic}} success={{success}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "State transactions (outbox publishes)",
                "Transactions on the state stores: storefront and fulfillment write each order"
                " or shipment and its event in one, which publishes the event (Dapr outbox).",
                "ops",
                (
                    "sum by (app_id, component, success) (rate("
                    f'dapr_component_state_count{{{APP}, operation="transaction"}}[{RATE}]))',
                    "{{app_id}} {{component}} success={{success}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Dead-lettered events",
                "Events that reached orders-dead-letter after their retries, as notifications"
                " records them, by event type. DeadLetterTopicGrowing alerts on any.",
                "ops",
                (
                    f"sum by (event_type) (rate(orderflow_dead_letters_total{{{APP}}}[{RATE}]))",
                    "{{event_type}}",
                ),
            )
        )
    )


def resiliency() -> Dashboard:
    cb = 'policy="circuitbreaker"'
    return (
        new_dashboard(
            "orderflow-resiliency",
            "orderflow / Resiliency",
            "The Dapr Resiliency policies at work, per target: retries, timeouts and the"
            " circuit breakers (docs/resiliency.md).",
        )
        .with_variable(APP_VARIABLE)
        .with_panel(
            stat_panel(
                "Resiliency resources loaded",
                "Resiliency resources each sidecar loaded at start: 0 means its calls run"
                " unprotected.",
                "short",
                (f"sum by (app_id) (dapr_resiliency_loaded{{{APP}}})", "{{app_id}}"),
            ).span(24)
        )
        .with_panel(
            timeseries_panel(
                "Retries by target",
                "Retry policy activations: attempts after a failure, by caller and target"
                " (app_payments, app_inventory, Pubsub_pubsub, ...).",
                "ops",
                (
                    "sum by (app_id, target) (rate("
                    f'dapr_resiliency_activations_total{{{APP}, policy="retry"}}[{RATE}]))',
                    "{{app_id}} → {{target}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Timeouts by target",
                "Timeout policy activations: attempts cut off at their deadline (2 s for"
                " invocations), by caller and target.",
                "ops",
                (
                    "sum by (app_id, target) (rate("
                    f'dapr_resiliency_activations_total{{{APP}, policy="timeout"}}[{RATE}]))',
                    "{{app_id}} → {{target}}",
                ),
            )
        )
        .with_panel(
            state_panel(
                "Circuit breaker state",
                "Each target's breaker state as its sidecar last recorded it, on every call"
                " through it: closed, half-open (one probe allowed) or open (calls fail fast)."
                " One gauge per target, but a breaker per target and method: a closed"
                " breaker called after an open one (a refund after a failed charge) shows"
                " closed. CircuitBreakerOpen reads the transitions (the next panel) instead.",
                (
                    "max by (app_id, target)"
                    f' (dapr_resiliency_cb_state{{{APP}, {cb}, status="half-open"}})'
                    " + 2 * max by (app_id, target)"
                    f' (dapr_resiliency_cb_state{{{APP}, {cb}, status="open"}})',
                    "{{app_id}} → {{target}}",
                ),
                {0: ("closed", "green"), 1: ("half-open", "yellow"), 2: ("open", "red")},
            )
        )
        .with_panel(
            timeseries_panel(
                "Circuit breaker transitions",
                "Breaker state changes per second, by target and the state entered.",
                "ops",
                (
                    "sum by (app_id, target, status) (rate("
                    f"dapr_resiliency_activations_total{{{APP}, {cb}}}[{RATE}]))",
                    "{{app_id}} → {{target}} {{status}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Policy executions by target",
                "Calls each policy wrapped, by caller, target and policy: the protection"
                " applied on the normal path, not only on failure.",
                "ops",
                (
                    "sum by (app_id, target, policy) (rate("
                    f"dapr_resiliency_count{{{APP}}}[{RATE}]))",
                    "{{app_id}} → {{target}} {{policy}}",
                ),
            )
        )
    )


def scaling() -> Dashboard:
    hpa = 'namespace=~"$namespace", horizontalpodautoscaler=~"$hpa"'
    # The HPAs target the app container's CPU (ContainerResource), so utilisation is the
    # app container's usage over its request, as the HPA computes it.
    # https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#container-resource-metrics
    pods = 'namespace=~"$namespace", pod=~"($hpa)-.*", container="app"'
    return (
        new_dashboard(
            "orderflow-scaling",
            "orderflow / Scaling",
            f"{KUBERNETES_ONLY} The HorizontalPodAutoscalers: replicas against CPU"
            " utilisation and its target.",
        )
        .with_variable(
            variable(
                "namespace",
                "Namespace",
                "label_values(kube_horizontalpodautoscaler_spec_max_replicas, namespace)",
            )
        )
        .with_variable(
            variable(
                "hpa",
                "HPA",
                "label_values(kube_horizontalpodautoscaler_spec_max_replicas"
                '{namespace=~"$namespace"}, horizontalpodautoscaler)',
            )
        )
        .with_panel(
            timeseries_panel(
                "Replicas: current, desired, min and max",
                f"{KUBERNETES_ONLY} The replicas each HPA runs and wants, between its bounds;"
                " HPAAtMaxReplicas alerts after 15 minutes at the maximum.",
                "short",
                (
                    f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}",
                    "{{horizontalpodautoscaler}} current",
                ),
                (
                    f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}",
                    "{{horizontalpodautoscaler}} desired",
                ),
                (
                    f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}",
                    "{{horizontalpodautoscaler}} min",
                ),
                (
                    f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}",
                    "{{horizontalpodautoscaler}} max",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "CPU utilisation against the target",
                f"{KUBERNETES_ONLY} The app containers' CPU usage over their requests (what"
                " the HPA averages), and the HPA's target utilisation.",
                "percentunit",
                (
                    f"sum by (namespace) ({rate('container_cpu_usage_seconds_total', pods)})"
                    " / sum by (namespace) (kube_pod_container_resource_requests"
                    f'{{{pods}, resource="cpu"}})',
                    "app containers",
                ),
                (
                    "kube_horizontalpodautoscaler_spec_target_metric"
                    f'{{{hpa}, metric_name="cpu", metric_target_type="utilization"}} / 100',
                    "{{horizontalpodautoscaler}} target",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "CPU usage by pod and container",
                f"{KUBERNETES_ONLY} CPU cores each pod uses, app and daprd sidecar apart.",
                "short",
                (
                    "sum by (pod, container) (rate(container_cpu_usage_seconds_total"
                    '{namespace=~"$namespace", pod=~"($hpa)-.*", container!="", container!="POD"}'
                    f"[{RATE}]))",
                    "{{pod}} {{container}}",
                ),
                width=24,
            )
        )
    )


def load() -> Dashboard:
    storefront = 'app_id="storefront", http_route!~"/metrics|/healthz"'
    return (
        new_dashboard(
            "orderflow-load",
            "orderflow / Load",
            "What Locust drives against what storefront serves. The Locust panels need its"
            " Prometheus exporter; the storefront panels work everywhere.",
        )
        .with_panel(
            timeseries_panel(
                "Served: storefront requests by route and status",
                "What storefront serves, per route and status: compare with what Locust sends.",
                "reqps",
                (
                    "sum by (http_route, http_response_status_code) (rate("
                    f"{HTTP}_count{{{storefront}}}[{RATE}]))",
                    "{{http_route}} {{http_response_status_code}}",
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Served: storefront latency p50 and p99",
                "Request duration percentiles as storefront measures them; exemplars link to"
                " Jaeger.",
                "s",
                (
                    f"histogram_quantile(0.5, sum by (le) ({rate(BUCKET, storefront)}))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) ({rate(BUCKET, storefront)}))",
                    "p99",
                ),
                exemplars=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Driven: Locust requests and failures",
                f"{NEEDS_LOCUST_EXPORTER} Requests per second Locust sends and sees fail, by"
                " request name.",
                "reqps",
                ("sum by (name) (locust_requests_current_rps)", "{{name}} sent"),
                ("sum by (name) (locust_requests_current_fail_per_sec)", "{{name}} failed"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Driven: Locust users",
                f"{NEEDS_LOCUST_EXPORTER} Simulated users the load shape runs.",
                "short",
                ("sum(locust_users)", "users"),
            )
        )
    )


DASHBOARDS = {
    "service-overview": service_overview,
    "dapr": dapr,
    "resiliency": resiliency,
    "scaling": scaling,
    "load": load,
}
