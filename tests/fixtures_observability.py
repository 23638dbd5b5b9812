"""Fixtures to observe the spans of this test process (all in-process services share one provider)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mnemo.common.telemetry import setup_telemetry

_exporter = InMemorySpanExporter()
_installed = False


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Every span ended in this process during the test (cleared before and after)."""
    global _installed
    if not _installed:
        setup_telemetry("mnemo-tests", [SimpleSpanProcessor(_exporter)])
        _installed = True
    _exporter.clear()
    yield _exporter
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
