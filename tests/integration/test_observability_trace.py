"""One REST turn through the whole in-process stack is ONE trace with spans of all four services.

All four services run in this process, so one tracer provider (with an in-memory exporter) sees every
span; a span's service is its `mnemo.service` attribute (from the tracer name `mnemo.<service>`).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.fixtures_observability import ancestors, by_name, span_exporter  # noqa: F401
from tests.fixtures_stack import Stack, stack  # noqa: F401
from tests.helpers import eventually

TURN_ROUTE = "POST /v1/agents/{agent_id}/messages"
LLM_SERVICES = {"llm-proxy"}


def _service(s: ReadableSpan) -> str:
    service = str(s.attributes.get("mnemo.service", ""))
    return "llm-proxy" if service in LLM_SERVICES else service


def _in_trace(spans: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context.trace_id == trace_id]


async def _one_turn(stack: Stack, exporter: InMemorySpanExporter) -> tuple[dict[str, Any], str, list[ReadableSpan]]:
    agent = await stack.create_agent()
    exporter.clear()
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{agent['id']}/messages", json={"message": "remember my name is Ada"})
    assert r.status_code == 200, r.text
    turn_id = r.json()["turn_id"]

    def turn_span_done() -> bool:
        return any(s.name == "orchestrator.turn" and s.attributes.get("mnemo.turn_id") == turn_id
                   for s in exporter.get_finished_spans())

    await eventually(turn_span_done, timeout=30, message="orchestrator.turn span of the turn never ended")
    spans = exporter.get_finished_spans()
    gateway = [s for s in spans if s.instrumentation_scope.name == "mnemo.gateway" and s.name == TURN_ROUTE]
    assert len(gateway) == 1, f"gateway request span {TURN_ROUTE!r} missing: {sorted({s.name for s in spans})}"
    return agent, turn_id, _in_trace(spans, gateway[0].context.trace_id)


async def test_a_turn_is_one_trace_across_the_four_services(
        stack: Stack, span_exporter: InMemorySpanExporter) -> None:
    agent, turn_id, spans = await _one_turn(stack, span_exporter)
    names = sorted({f"{_service(s)}:{s.name}" for s in spans})
    assert {"gateway", "orchestrator", "memory", "llm-proxy"} <= {_service(s) for s in spans}, names

    request = by_name([s for s in spans if _service(s) == "gateway"], TURN_ROUTE)
    assert request.kind == SpanKind.SERVER
    turn = by_name(spans, "orchestrator.turn")
    # gateway request → (JetStream hop) → orchestrator turn
    assert request in ancestors(turn, spans), names
    steps = [s for s in spans if s.name == "orchestrator.step"]
    assert steps and all(s.parent.span_id == turn.context.span_id for s in steps)
    step_ids = {s.context.span_id for s in steps}

    def under_a_step(s: ReadableSpan) -> bool:
        return any(a.context.span_id in step_ids for a in ancestors(s, spans))

    chats = [s for s in spans if s.name == "mnemo.v1.LLMService/Chat"]
    assert chats and all(_service(s) == "llm-proxy" and s.kind == SpanKind.SERVER and under_a_step(s)
                         for s in chats), names
    commits = [s for s in spans if s.name == "mnemo.v1.MemoryService/CommitStep"]
    assert commits and all(_service(s) == "memory" and under_a_step(s) for s in commits), names
    contexts = [s for s in spans if s.name == "mnemo.v1.MemoryService/GetContext"]
    assert contexts and all(turn in ancestors(s, spans) for s in contexts)
    # memory spans name the operation and count what they return
    assert any(s.name.startswith("memory.") and "mnemo.result_count" in s.attributes
               for s in spans if _service(s) == "memory"), names

    ids = {"mnemo.tenant_id": stack.tenant_id, "mnemo.agent_id": agent["id"], "mnemo.turn_id": turn_id}
    for s in [request, turn, *steps, *chats, *commits, *contexts]:
        for key, value in ids.items():
            assert s.attributes.get(key) == value, f"{_service(s)} span {s.name!r}: {key}={s.attributes.get(key)!r}"
    assert not [s.name for s in spans if s.status.status_code.name == "ERROR"]


async def test_llm_spans_follow_the_genai_conventions(
        stack: Stack, span_exporter: InMemorySpanExporter) -> None:
    _, _, spans = await _one_turn(stack, span_exporter)
    chats = [s for s in spans if s.name == "mnemo.v1.LLMService/Chat"]
    assert chats
    chat_ids = {s.context.span_id for s in chats}
    genai = [s for s in spans if _service(s) == "llm-proxy" and "gen_ai.request.model" in s.attributes
             and (s.context.span_id in chat_ids or any(a.context.span_id in chat_ids for a in ancestors(s, spans)))]
    assert genai, ("no llm-proxy span under LLMService/Chat carries gen_ai.request.model: "
                   f"{[(s.name, dict(s.attributes)) for s in spans if _service(s) == 'llm-proxy']}")
    for s in genai:
        assert s.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert int(s.attributes["gen_ai.usage.input_tokens"]) > 0
        assert int(s.attributes["gen_ai.usage.output_tokens"]) > 0
        assert s.attributes.get("gen_ai.operation.name", "chat") == "chat"
