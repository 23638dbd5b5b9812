"""The REST request span is the parent of everything the turn does (through JetStream and gRPC)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.fixtures_observability import ancestors, by_name, span_exporter  # noqa: F401
from tests.fixtures_stack import Stack, stack  # noqa: F401
from tests.helpers import eventually


async def test_turn_trace_starts_at_the_rest_request(stack: Stack, span_exporter: InMemorySpanExporter,
                                                     scripted_llm: Any) -> None:
    agent_id = (await stack.create_agent())["id"]
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "trace me"})
    assert r.status_code == 200
    turn_id = r.json()["turn_id"]

    def spans() -> list[Any]:
        return list(span_exporter.get_finished_spans())

    await eventually(lambda: any(s.name == "orchestrator.turn" for s in spans()), message="no orchestrator span")
    request = by_name(spans(), "POST /v1/agents/{agent_id}/messages")
    assert request.kind == SpanKind.SERVER
    assert request.attributes["mnemo.tenant_id"] == stack.tenant_id
    assert request.attributes["mnemo.agent_id"] == agent_id
    assert request.attributes["mnemo.turn_id"] == turn_id
    assert request.attributes["http.response.status_code"] == 200
    turn = by_name(spans(), "orchestrator.turn")
    assert turn.context.trace_id == request.context.trace_id
    assert request.context.span_id in [a.context.span_id for a in ancestors(turn, spans())]
