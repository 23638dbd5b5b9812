"""OpenTelemetry setup and W3C trace-context propagation through gRPC metadata and NATS headers.

Configured by the standard `OTEL_*` variables: `OTEL_TRACES_EXPORTER` = `otlp` | `console` | `none`
(default `none` in the embedded stack), `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

_configured = False


def setup_telemetry(service_name: str, extra_processors: list[SpanProcessor] | None = None) -> None:
    """Install a tracer provider for this process (idempotent)."""
    global _configured
    if _configured:
        return
    _configured = True
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name, "service.namespace": "mnemo"}))
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    if exporter == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                  os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    for processor in extra_processors or []:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def get_tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (traceparent, tracestate)."""
    out: dict[str, str] = dict(carrier or {})
    propagate.inject(out)
    return out


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context whose parent is the span named in `carrier` headers."""
    return propagate.extract(dict(carrier or {}))


def grpc_metadata() -> list[tuple[str, str]]:
    """Trace headers as gRPC metadata for an outgoing call."""
    return list(inject().items())


@contextmanager
def span(name: str, *, tracer: str = "mnemo", parent: Mapping[str, str] | None = None,
         kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """Start a span (optionally as the child of propagated headers); record errors on it."""
    ctx = extract(parent) if parent is not None else None
    with get_tracer(tracer).start_as_current_span(name, context=ctx, kind=kind,
                                                  attributes=attributes or {},
                                                  record_exception=True,
                                                  set_status_on_exception=True) as s:
        yield s


def set_error(s: Span, exc: BaseException) -> None:
    s.record_exception(exc)
    s.set_status(Status(StatusCode.ERROR, str(exc)))
