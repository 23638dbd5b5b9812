"""Telemetry configuration from the standard OTEL_* variables, and logs carrying trace ids."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mnemo.common import telemetry
from mnemo.common.logs import JsonFormatter
from tests.fixtures_observability import span_exporter  # noqa: F401


def _exporter_types(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[type]:
    for key in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    processors = telemetry._exporters()
    try:
        return [type(p.span_exporter) for p in processors]  # type: ignore[attr-defined]
    finally:
        for p in processors:
            p.shutdown()


def test_exporters_follow_the_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _exporter_types(monkeypatch) == []  # off by default
    assert _exporter_types(monkeypatch, OTEL_TRACES_EXPORTER="none") == []
    assert _exporter_types(monkeypatch, OTEL_TRACES_EXPORTER="otlp") == [GrpcExporter]
    assert _exporter_types(monkeypatch, OTEL_TRACES_EXPORTER="otlp",
                           OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf") == [HttpExporter]
    assert _exporter_types(monkeypatch, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                           OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf") == [HttpExporter]
    assert _exporter_types(monkeypatch, OTEL_TRACES_EXPORTER="otlp, console") == [GrpcExporter, ConsoleSpanExporter]


def test_a_second_setup_adds_processors_to_the_same_provider(
        span_exporter: InMemorySpanExporter) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    late = InMemorySpanExporter()
    telemetry.setup_telemetry("mnemo-late", [SimpleSpanProcessor(late)])
    with telemetry.span("both.see.me", tracer="mnemo.memory"):
        pass
    assert [s.name for s in late.get_finished_spans()] == ["both.see.me"]
    assert [s.name for s in span_exporter.get_finished_spans()] == ["both.see.me"]
    assert late.get_finished_spans()[0].attributes["mnemo.service"] == "memory"
    late.shutdown()  # stays attached to the provider: stop it collecting


def test_errors_are_recorded_on_the_span(span_exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError):
        with telemetry.span("fails", tracer="mnemo.orchestrator"):
            raise ValueError("bad arguments")
    [s] = span_exporter.get_finished_spans()
    assert s.status.status_code.name == "ERROR" and "bad arguments" in (s.status.description or "")
    assert s.events[0].name == "exception"


def test_json_logs_carry_the_trace_and_span_ids(span_exporter: InMemorySpanExporter) -> None:
    record = logging.LogRecord("mnemo.test", logging.INFO, __file__, 1, "hello sk-abcdefghijkl", None, None)
    with telemetry.span("logging") as s:
        line = json.loads(JsonFormatter("memory").format(record))
    ctx = s.get_span_context()
    assert line["trace_id"] == format(ctx.trace_id, "032x") and line["span_id"] == format(ctx.span_id, "016x")
    assert "sk-abcdefghijkl" not in line["msg"]


def test_llm_span_follows_the_genai_conventions(span_exporter: InMemorySpanExporter) -> None:
    with telemetry.llm_span("chat", "gpt-4o-mini", provider="openai") as s:
        telemetry.set_llm_usage(s, 120, 30, response_model="gpt-4o-mini-2024", finish_reasons=["tool_calls"])
    [span] = span_exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini" and span.kind.name == "CLIENT"
    assert span.attributes["mnemo.service"] == "llm-proxy"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (120, 30)
    assert tuple(span.attributes["gen_ai.response.finish_reasons"]) == ("tool_calls",)


def test_without_a_provider_spans_cost_nothing_but_context_still_flows_downstream(
        span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that records no spans builds none, yet a caller's trace and the turn scope reach
    the headers it sends on (as the API's no-op tracer would pass them)."""
    with telemetry.span("caller", tracer="mnemo.gateway"):
        caller = telemetry.inject()
    caller_trace = caller["traceparent"].split("-")[1]
    span_exporter.clear()
    monkeypatch.setattr(telemetry, "_provider", None)

    with telemetry.span("untraced", parent=caller, attributes={"mnemo.turn_id": "turn-1"}) as s:
        s.set_attribute("ignored", 1)  # a non-recording span takes attributes and drops them
        assert not s.is_recording()
        downstream = telemetry.inject()
        assert telemetry.current_trace_id() == caller_trace
    assert downstream["traceparent"] == caller["traceparent"]  # the caller's span stays the parent
    assert "mnemo.turn_id=turn-1" in downstream["baggage"]
    with pytest.raises(ValueError):
        with telemetry.span("fails"):
            raise ValueError("still raised")
    with telemetry.span("no parent") as s:
        assert telemetry.inject() == {} and not s.get_span_context().is_valid
    assert span_exporter.get_finished_spans() == ()


def test_inject_follows_the_current_context_and_hands_out_its_own_dict(span_exporter: InMemorySpanExporter) -> None:
    """inject() keeps the headers of recent contexts: each context still gets its own headers, and a
    caller changing what it got changes nothing for the next caller."""
    with telemetry.turn_scope("t1", "a1", "turn-1"):
        first = telemetry.inject()
        first["baggage"] = "changed by a caller"
        again = telemetry.inject({"Nats-Msg-Id": "m1"})
        with telemetry.span("step", tracer="mnemo.orchestrator") as s:
            inner = telemetry.inject()
    with telemetry.turn_scope("t1", "a1", "turn-2"):
        other = telemetry.inject()
    assert again["Nats-Msg-Id"] == "m1" and "turn-1" in again["baggage"] and "changed" not in again["baggage"]
    assert "traceparent" not in again
    assert inner["traceparent"].split("-")[2] == format(s.get_span_context().span_id, "016x")
    assert "turn-2" in other["baggage"] and "turn-1" not in other["baggage"]
