"""Grafana provisioning for the dashboards: the Prometheus datasource whose exemplars link
to the Jaeger datasource, and a provider that loads dashboards/*.json.

The URLs are the local stack's; on Kubernetes kube-prometheus-stack provisions its own
Prometheus datasource (uid ``prometheus`` too), and the Jaeger one and the exemplar link
go in its Helm values (``grafana.additionalDataSources``).
https://grafana.com/docs/grafana/latest/administration/provisioning/#data-sources
"""

from typing import Any

from orderflow_dashboards.panels import JAEGER_UID, PROMETHEUS

# The trace-id label the apps put on exemplars (OpenTelemetry's Prometheus exporter).
EXEMPLAR_TRACE_ID_LABEL = "trace_id"


def datasources() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": PROMETHEUS.uid,
                "type": "prometheus",
                "access": "proxy",
                "url": "http://127.0.0.1:9090",
                "isDefault": True,
                "jsonData": {
                    # The scrape interval, from which Grafana derives $__rate_interval.
                    "timeInterval": "5s",
                    # https://grafana.com/docs/grafana/latest/datasources/prometheus/configure/#exemplars
                    "exemplarTraceIdDestinations": [
                        {"name": EXEMPLAR_TRACE_ID_LABEL, "datasourceUid": JAEGER_UID}
                    ],
                },
            },
            {
                "name": "Jaeger",
                "uid": JAEGER_UID,
                "type": "jaeger",
                "access": "proxy",
                "url": "http://127.0.0.1:16686",
            },
        ],
    }


def dashboard_provider() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "orderflow",
                "folder": "orderflow",
                "type": "file",
                "options": {"path": "dashboards", "foldersFromFilesStructure": False},
            }
        ],
    }
