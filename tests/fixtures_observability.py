"""Fixtures to observe the spans of this test process (all in-process services share one provider)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mnemo.common.telemetry import setup_telemetry


class _GatedProcessor(SpanProcessor):
    """Exports to the in-memory exporter only while a test that asked for spans runs
    (a tracer provider cannot drop a processor; other tests must not pile spans up)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.inner = SimpleSpanProcessor(exporter)
        self.active = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.active:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_exporter = InMemorySpanExporter()
_gate = _GatedProcessor(_exporter)
_installed = False


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Every span ended in this process during the test (cleared before and after)."""
    global _installed
    if not _installed:
        setup_telemetry("mnemo-tests", [_gate])
        _installed = True
    _exporter.clear()
    _gate.active = True
    try:
        yield _exporter
    finally:
        _gate.active = False
        _exporter.clear()


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called `name` (fails listing the names when there is none)."""
    found = [s for s in spans if s.name == name]
    assert found, f"no span {name!r} among {sorted({s.name for s in spans})}"
    return found[0]


def ancestors(span: ReadableSpan, spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> list[ReadableSpan]:
    """`span`'s parent, grandparent, ... as far as they were recorded."""
    index = {s.context.span_id: s for s in spans}
    out: list[ReadableSpan] = []
    current = span
    while current.parent is not None and current.parent.span_id in index:
        current = index[current.parent.span_id]
        out.append(current)
    return out
