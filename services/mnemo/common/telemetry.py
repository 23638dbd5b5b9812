"""OpenTelemetry setup and W3C trace-context propagation through gRPC metadata and NATS headers.

Configured by the standard `OTEL_*` variables: `OTEL_TRACES_EXPORTER` = `otlp` | `console` | `none`
(comma-separated list allowed; default `none` in the embedded stack), `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` | `http/protobuf`), `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_SDK_DISABLED`.

Every span gets a `mnemo.service` attribute (from its tracer name `mnemo.<service>` or else the
process's service name), and the turn scope set by `turn_scope()` (`mnemo.tenant_id`,
`mnemo.agent_id`, `mnemo.turn_id`) travels as W3C baggage to every downstream span, across gRPC and
NATS, so spans of memory and llm-proxy carry it without any code of theirs.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Span, SpanKind

SERVICE_ATTR = "mnemo.service"
SCOPE_KEYS = ("mnemo.tenant_id", "mnemo.agent_id", "mnemo.turn_id")

_provider: TracerProvider | None = None
_configured = False


class MnemoAttributesProcessor(SpanProcessor):
    """Stamps `mnemo.service` and the baggage turn scope onto every span when it starts."""

    def __init__(self, default_service: str) -> None:
        self.default_service = default_service

    def on_start(self, span: SdkSpan, parent_context: otel_context.Context | None = None) -> None:
        attrs = span.attributes or {}
        extra: dict[str, str] = {}
        if SERVICE_ATTR not in attrs:
            extra[SERVICE_ATTR] = service_of(span, self.default_service)
        for key, value in baggage.get_all(parent_context).items():
            if key in SCOPE_KEYS and value and not attrs.get(key):
                extra[key] = str(value)
        if extra:
            span.set_attributes(extra)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def service_of(span: ReadableSpan, default: str = "") -> str:
    """The Mnemo service a span belongs to: its tracer `mnemo.<svc>`, else the process's service."""
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    if scope.startswith("mnemo.") and scope.count(".") == 1:
        return scope.split(".", 1)[1].replace("_", "-")
    return default


def _exporters() -> list[SpanProcessor]:
    out: list[SpanProcessor] = []
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    if "otlp" in names:
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                  os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
        out.append(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in names:
        out.append(BatchSpanProcessor(ConsoleSpanExporter()))
    return out


def setup_telemetry(service_name: str, extra_processors: list[SpanProcessor] | None = None) -> None:
    """Install this process's tracer provider; a later call only adds `extra_processors`.

    `extra_processors` (e.g. an in-memory exporter in tests) see every span of the process.
    """
    global _configured, _provider
    if _configured:
        if _provider is not None:
            for processor in extra_processors or []:
                _provider.add_span_processor(processor)
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        _configured = True
        return
    processors = [*_exporters(), *(extra_processors or [])]
    if not processors:
        # Nothing would see a span: keep the API's no-op provider (spans cost next to nothing;
        # incoming trace context still flows downstream). A later call with processors installs.
        return
    _configured = True
    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; the sampler comes from OTEL_TRACES_SAMPLER.
    provider = TracerProvider(resource=Resource.create({"service.name": name, "service.namespace": "mnemo"}))
    default_service = name.removeprefix("mnemo-")
    provider.add_span_processor(MnemoAttributesProcessor(default_service))
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _provider = provider


@functools.lru_cache(maxsize=256)
def get_tracer(name: str) -> trace.Tracer:
    """A tracer per name, cached (a proxy until the provider is installed, then delegating to it)."""
    return trace.get_tracer(name)


# The headers injected for recent (span context, baggage) pairs: what the propagators write depends on
# nothing else, and a turn's messages carry the same turn scope (URL-encoding its baggage anew for
# each message was ~2 % of a turn's CPU).
_INJECTED: OrderedDict[tuple[Any, ...], dict[str, str]] = OrderedDict()
_INJECTED_MAX = 256


def inject(carrier: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """The current trace context (and turn-scope baggage) as W3C headers: traceparent, tracestate, baggage."""
    ctx = otel_context.get_current()
    sc = trace.get_current_span(ctx).get_span_context()
    key = (sc.trace_id, sc.span_id, sc.trace_flags, tuple(sc.trace_state.items()) if sc.trace_state else (),
           tuple(baggage.get_all(ctx).items()))
    headers = _INJECTED.get(key)
    if headers is None:
        headers = {}
        propagate.inject(headers, context=ctx)
        _INJECTED[key] = headers
        while len(_INJECTED) > _INJECTED_MAX:
            _INJECTED.popitem(last=False)
    out: dict[str, str] = dict(carrier or {})
    out.update(headers)
    return out


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context whose parent is the span named in `carrier` headers (header names case-insensitive)."""
    return propagate.extract({str(k).lower(): v for k, v in dict(carrier or {}).items()})


def current_trace_id() -> str:
    """The current span's W3C trace id (32 hex digits), or "" when there is no valid trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def grpc_metadata() -> list[tuple[str, str]]:
    """Trace headers as gRPC metadata for an outgoing call."""
    return list(inject().items())


@contextmanager
def turn_scope(tenant_id: str = "", agent_id: str = "", turn_id: str = "") -> Iterator[None]:
    """Within this block, every span here and downstream (gRPC, NATS) carries these `mnemo.*` ids."""
    ctx = otel_context.get_current()
    for key, value in zip(SCOPE_KEYS, (tenant_id, agent_id, turn_id), strict=True):
        if value:
            ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def span(name: str, *, tracer: str = "mnemo", parent: Mapping[str, str] | None = None,
         kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """Start a span (optionally as the child of propagated headers); record errors on it.

    With `parent` headers naming a span, the span is its child and takes their baggage turn scope;
    headers without `traceparent` leave the current context as the parent.
    Non-empty `mnemo.tenant_id` / `mnemo.agent_id` / `mnemo.turn_id` attributes become the turn
    scope of everything under this span, in this process and downstream (as `turn_scope()`).
    """
    # Headers without a traceparent (e.g. a client's HTTP request) continue the current trace, if any.
    has_parent = parent is not None and any(str(k).lower() == "traceparent" for k in parent)
    ctx = extract(parent) if has_parent else None
    scope = {k: str(v) for k, v in (attributes or {}).items() if k in SCOPE_KEYS and v}
    if scope:
        base = ctx if ctx is not None else otel_context.get_current()
        held = baggage.get_all(base)
        changed = {k: v for k, v in scope.items() if held.get(k) != v}
        if changed:  # a span inside its own turn's scope (most of them) adds nothing
            ctx = base
            for key, value in changed.items():
                ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx) if ctx is not None else None
    try:
        if _provider is None:
            # Nothing in this process records spans: the API's no-op tracer would only make the
            # current span current again (a NonRecordingSpan with its context). What flows
            # downstream (the parent's trace context, the turn scope as baggage) is attached above;
            # skipping the no-op span saves ~6 us on each of the ~20 spans of a turn.
            yield trace.get_current_span()
            return
        with get_tracer(tracer).start_as_current_span(name, kind=kind,
                                                      attributes=attributes or {},
                                                      record_exception=True,
                                                      set_status_on_exception=True) as s:
            yield s
    finally:
        if token is not None:
            otel_context.detach(token)


def llm_span(operation: str, model: str, *, provider: str = "", tracer: str = "mnemo.llm_proxy",
             attributes: dict[str, Any] | None = None) -> AbstractContextManager[Span]:
    """A GenAI-convention CLIENT span "<operation> <model>" (operation: chat, embeddings, ...).

    Record the outcome with `set_llm_usage`. (`span` itself, not a generator around it: this is on
    every model call.)
    """
    attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model}
    if provider:
        attrs["gen_ai.provider.name"] = provider
        attrs["gen_ai.system"] = provider  # the older name, still read by many backends
    if attributes:
        attrs.update(attributes)
    return span(f"{operation} {model}".strip(), tracer=tracer, kind=SpanKind.CLIENT, attributes=attrs)


def set_llm_usage(s: Span, input_tokens: int, output_tokens: int, *, response_model: str = "",
                  finish_reasons: list[str] | None = None, response_id: str = "") -> None:
    """GenAI usage attributes on an LLM span."""
    s.set_attribute("gen_ai.usage.input_tokens", int(input_tokens))
    s.set_attribute("gen_ai.usage.output_tokens", int(output_tokens))
    if response_model:
        s.set_attribute("gen_ai.response.model", response_model)
    if finish_reasons:
        s.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))
    if response_id:
        s.set_attribute("gen_ai.response.id", response_id)
