"""OpenTelemetry metrics with a Prometheus scrape endpoint per service (`MNEMO_METRICS_PORT`).

Instruments are module-level so any service records with one line, e.g.
`metrics.TURN_LATENCY.record(seconds, {"model": m})`. Until `setup_metrics` runs they are no-ops.
The Prometheus names they export are listed in `PROMETHEUS_SERIES` (and docs/observability.md).

JetStream queue depth: `run_service` starts `observe_service_queues` for the consumers of
`SERVICE_QUEUES` (orchestrator: TURNS/orchestrator, memory: MESSAGES/recall-indexer) when metrics are
served; other code can call `observe_consumer_pending(js, stream, consumer)`. An observer polls the
consumer's info in the background and feeds the `mnemo.jetstream.*` gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Observation

from mnemo.common import subjects

log = logging.getLogger(__name__)

_meter = otel_metrics.get_meter("mnemo")

# Latency buckets (seconds) sized for LLM turns: 5 ms .. 5 min.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RATIO_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

# Orchestrator
TURN_LATENCY = _meter.create_histogram("mnemo.turn.duration", unit="s", description="turn latency",
                                       explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)
STEP_LATENCY = _meter.create_histogram("mnemo.step.duration", unit="s", description="step latency",
                                       explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)
TURNS_IN_FLIGHT = _meter.create_up_down_counter("mnemo.turns.in_flight", description="turns being run")
TURNS_TOTAL = _meter.create_counter("mnemo.turns", description="turns finished, by stop reason")
CONTEXT_UTILIZATION = _meter.create_histogram("mnemo.context.utilization", unit="1",
                                              description="request tokens / context window",
                                              explicit_bucket_boundaries_advisory=RATIO_BUCKETS)
EVICTIONS = _meter.create_counter("mnemo.evictions", description="messages evicted from the queue")
FUNCTION_ERRORS = _meter.create_counter("mnemo.function.errors", description="agent function errors")
MCP_CALLS = _meter.create_counter("mnemo.mcp.calls", description="MCP tool calls, by outcome")
MCP_CALL_LATENCY = _meter.create_histogram("mnemo.mcp.call.duration", unit="s", description="MCP tool call latency",
                                           explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)

# LLM proxy
TOKENS = _meter.create_counter("mnemo.llm.tokens", description="tokens by model and kind (input/output)")
LLM_ERRORS = _meter.create_counter("mnemo.llm.errors", description="LLM call errors by kind")
LLM_LATENCY = _meter.create_histogram("mnemo.llm.duration", unit="s", description="LLM call latency",
                                      explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)

# Gateway
HTTP_REQUESTS = _meter.create_counter("mnemo.http.requests", description="REST requests by route and status")
HTTP_LATENCY = _meter.create_histogram("mnemo.http.duration", unit="s", description="REST request latency",
                                       explicit_bucket_boundaries_advisory=LATENCY_BUCKETS)

# JetStream consumers, fed by observe_consumer_pending(): {(stream, consumer): {"pending": n, ...}}
_consumer_state: dict[tuple[str, str], dict[str, int]] = {}


def _observe(field: str) -> Any:
    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        for (stream, consumer), values in list(_consumer_state.items()):
            yield Observation(values.get(field, 0), {"stream": stream, "consumer": consumer})
    return callback


JETSTREAM_PENDING = _meter.create_observable_gauge(
    "mnemo.jetstream.pending", callbacks=[_observe("pending")],
    description="messages not yet delivered to the consumer (queue depth)")
JETSTREAM_ACK_PENDING = _meter.create_observable_gauge(
    "mnemo.jetstream.ack_pending", callbacks=[_observe("ack_pending")],
    description="messages delivered but not yet acknowledged")
JETSTREAM_REDELIVERED = _meter.create_observable_gauge(
    "mnemo.jetstream.redelivered", callbacks=[_observe("redelivered")],
    description="messages redelivered at least once and still unacknowledged")

# Every series the Prometheus exporter produces from the instruments above (verified by scraping in
# tests/integration/test_observability_metrics.py). Histograms also export _count and _sum.
PROMETHEUS_SERIES: dict[str, str] = {
    "mnemo_turn_duration_seconds": "histogram",
    "mnemo_step_duration_seconds": "histogram",
    "mnemo_turns_in_flight": "gauge",
    "mnemo_turns_total": "counter",
    "mnemo_context_utilization": "histogram",
    "mnemo_evictions_total": "counter",
    "mnemo_function_errors_total": "counter",
    "mnemo_llm_tokens_total": "counter",
    "mnemo_llm_errors_total": "counter",
    "mnemo_llm_duration_seconds": "histogram",
    "mnemo_http_requests_total": "counter",
    "mnemo_http_duration_seconds": "histogram",
    "mnemo_jetstream_pending": "gauge",
    "mnemo_jetstream_ack_pending": "gauge",
    "mnemo_jetstream_redelivered": "gauge",
}

_started = False
_port: int | None = None


def setup_metrics(service: str, port: int, addr: str = "0.0.0.0") -> int | None:
    """Serve /metrics on `port` (0 = no endpoint) with every instrument of this process.

    Idempotent: a process has one meter provider; returns the port being served (None if none).
    """
    global _started, _port
    if _started or port <= 0:
        return _port
    _started = True
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    reader = PrometheusMetricReader()
    otel_metrics.set_meter_provider(MeterProvider(
        resource=Resource.create({"service.name": service, "service.namespace": "mnemo"}),
        metric_readers=[reader]))
    start_http_server(port, addr=addr)
    _port = port
    return _port


class ConsumerPendingObserver:
    """Polls one JetStream consumer's info and publishes its pending counts as gauges."""

    def __init__(self, js: Any, stream: str, consumer: str, interval: float = 5.0) -> None:
        self.js, self.stream, self.consumer, self.interval = js, stream, consumer, interval
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> dict[str, int]:
        """Read the consumer's info now and update the gauges."""
        info = await self.js.consumer_info(self.stream, self.consumer)
        values = {"pending": int(info.num_pending or 0), "ack_pending": int(info.num_ack_pending or 0),
                  "redelivered": int(info.num_redelivered or 0)}
        _consumer_state[(self.stream, self.consumer)] = values
        return values

    def start(self) -> ConsumerPendingObserver:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"pending-{self.consumer}")
        return self

    async def _run(self) -> None:
        while True:
            try:
                if _started:  # no Prometheus endpoint in this process: nobody would read the gauges
                    await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("consumer info %s/%s unavailable: %s", self.stream, self.consumer, exc)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        _consumer_state.pop((self.stream, self.consumer), None)


def observe_consumer_pending(js: Any, stream: str, consumer: str, interval: float = 5.0) -> ConsumerPendingObserver:
    """Start feeding `mnemo.jetstream.*` gauges for `consumer` on `stream`; call `.stop()` on shutdown."""
    return ConsumerPendingObserver(js, stream, consumer, interval).start()


# The JetStream consumers whose queue depth each service process reports (run_service starts them).
SERVICE_QUEUES: dict[str, list[tuple[str, str]]] = {
    "orchestrator": [(subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)],
    "memory": [(subjects.MESSAGES_STREAM, subjects.RECALL_INDEXER_CONSUMER)],
}


class QueueObservers:
    """The queue-depth observers of one service process, on a NATS connection of their own."""

    def __init__(self, nc: Any, observers: list[ConsumerPendingObserver]) -> None:
        self.nc, self.observers = nc, observers

    async def stop(self) -> None:
        for observer in self.observers:
            await observer.stop()
        with contextlib.suppress(Exception):
            await self.nc.close()


async def observe_service_queues(service: str, nats_url: str, interval: float = 5.0) -> QueueObservers | None:
    """Report the queue depth of `service`'s consumers (SERVICE_QUEUES) when metrics are served."""
    queues = SERVICE_QUEUES.get(service.removeprefix("mnemo-").replace("_", "-"), [])
    if not queues or not _started:
        return None
    from mnemo.common.natsutil import connect

    try:
        nc = await connect(nats_url, f"mnemo-{service}-metrics")
    except Exception as exc:
        log.warning("queue depth metrics unavailable (NATS %s): %s", nats_url, exc)
        return None
    js = nc.jetstream()
    return QueueObservers(nc, [observe_consumer_pending(js, stream, consumer, interval)
                               for stream, consumer in queues])
