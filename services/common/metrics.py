"""OpenTelemetry metrics with a Prometheus scrape endpoint per service (`MNEMO_METRICS_PORT`).

Instruments are module-level so any service records with one line, e.g.
`metrics.TURN_LATENCY.record(seconds, {"model": m})`. Until `setup_metrics` runs they are no-ops.
"""

from __future__ import annotations

from opentelemetry import metrics as otel_metrics

_meter = otel_metrics.get_meter("mnemo")

# Orchestrator
TURN_LATENCY = _meter.create_histogram("mnemo.turn.duration", unit="s", description="turn latency")
STEP_LATENCY = _meter.create_histogram("mnemo.step.duration", unit="s", description="step latency")
TURNS_IN_FLIGHT = _meter.create_up_down_counter("mnemo.turns.in_flight", description="turns being run")
TURNS_TOTAL = _meter.create_counter("mnemo.turns", description="turns finished, by stop reason")
CONTEXT_UTILIZATION = _meter.create_histogram("mnemo.context.utilization", unit="1",
                                              description="request tokens / context window")
EVICTIONS = _meter.create_counter("mnemo.evictions", description="messages evicted from the queue")
FUNCTION_ERRORS = _meter.create_counter("mnemo.function.errors", description="agent function errors")

# LLM proxy
TOKENS = _meter.create_counter("mnemo.llm.tokens", description="tokens by model and kind (input/output)")
LLM_ERRORS = _meter.create_counter("mnemo.llm.errors", description="LLM call errors by kind")
LLM_LATENCY = _meter.create_histogram("mnemo.llm.duration", unit="s", description="LLM call latency")

# Gateway
HTTP_REQUESTS = _meter.create_counter("mnemo.http.requests", description="REST requests by route and status")

_started = False


def setup_metrics(service: str, port: int) -> None:
    """Serve /metrics on `port` (0 = no endpoint) with every instrument of this process."""
    global _started
    if _started or port <= 0:
        return
    _started = True
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    reader = PrometheusMetricReader()
    otel_metrics.set_meter_provider(MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]))
    start_http_server(port, addr="0.0.0.0")
