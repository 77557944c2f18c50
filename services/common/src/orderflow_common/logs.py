"""Structured JSON logs, one object a line, for every service and for uvicorn itself.
A line written while a span is active carries its ``trace_id`` and ``span_id``: the
correlation id that finds the line from a trace in Jaeger, and the trace from the line.
https://nhairs.github.io/python-json-logger/latest/
https://opentelemetry.io/docs/specs/otel/compatibility/logging_trace_context/"""

import logging.config

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS


def configure_logging(service: str, level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "service": {"()": _ServiceFilter, "service": service},
                "trace": {"()": TraceFilter},
            },
            "formatters": {
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                    "rename_fields": {"asctime": "time", "levelname": "level"},
                    # uvicorn adds an ANSI-coloured copy of some messages; JSON needs none.
                    "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
                }
            },
            "handlers": {
                "stdout": {
                    "class": "logging.StreamHandler",
                    "formatter": "json",
                    "filters": ["service", "trace"],
                    "stream": "ext://sys.stdout",
                }
            },
            "root": {"handlers": ["stdout"], "level": level.upper()},
            # uvicorn's own loggers propagate to the root instead of printing plain text.
            "loggers": {
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                # One line per call to the sidecar is noise; failures still show.
                "httpx": {"level": "WARNING"},
            },
        }
    )


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


class TraceFilter(logging.Filter):
    """Adds the active span's ids, in the hex form Jaeger shows and searches. On the
    handler, so that every logger's lines get them, uvicorn's included."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = trace.format_trace_id(context.trace_id)
            record.span_id = trace.format_span_id(context.span_id)
        return True
