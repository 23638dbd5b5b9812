"""Per-turn limits, the loop guard, memory pressure, compaction and overflow handling."""

from __future__ import annotations

import json

from mnemo.orchestrator.tokens import TokenCounter
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import (  # noqa: F401
    agent_factory,
    chat_llm,
    orchestrator,
    orchestrator_factory,
    run_turn,
)
from tests.helpers import eventually

OVERFLOW = {"error": {"status": 400, "body": {"error": {
    "message": "This model's maximum context length is 2048 tokens.", "type": "invalid_request_error",
    "code": "context_length_exceeded"}}}}


def call(name: str, heartbeat: bool = False, **args: object) -> dict:
    return {"tool_call": {"name": name, "arguments": {**args, "request_heartbeat": heartbeat}}}


def agent_requests(scripted_llm) -> list[dict]:
    return [r for r in scripted_llm.chat_requests() if r.get("tools")]


def summarizer_requests(scripted_llm) -> list[dict]:
    return [r for r in scripted_llm.chat_requests() if not r.get("tools")]


async def base_context_tokens(agent_factory, nc) -> int:
    """Context tokens of a fresh agent's first request (measured on a probe agent)."""
    probe = await agent_factory()
    result = await run_turn(nc, "t1", probe.config.id, "probe")
    return result.of("usage")[0].usage.context_tokens


async def test_step_cap(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push(*[call("send_message", True, message=f"part {i}") for i in range(5)])
    result = await run_turn(nc, "t1", agent.config.id, "tell me a long story", max_steps=3)
    assert result.stop_reason == "max_steps" and result.final.turn_completed.steps == 3
    assert result.replies == ["part 0", "part 1", "part 2"]


async def test_step_cap_from_agent_limits(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory(limits=common_pb2.AgentLimits(max_steps=2))
    scripted_llm.push(*[call("send_message", True, message=f"part {i}") for i in range(5)])
    result = await run_turn(nc, "t1", agent.config.id, "go on")
    assert result.stop_reason == "max_steps" and len(result.replies) == 2


async def test_token_cap(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory(limits=common_pb2.AgentLimits(max_tokens_per_turn=100))
    scripted_llm.push(*[call("send_message", True, message=f"part {i}") for i in range(5)])
    result = await run_turn(nc, "t1", agent.config.id, "go on")
    assert result.stop_reason == "token_budget" and result.final.turn_completed.steps == 1
    assert result.final.turn_completed.usage.total_tokens >= 100


async def test_loop_guard_stops_repeated_identical_calls(orchestrator, agent_factory, memory_stub,
                                                         scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push(*[call("conversation_search", True, query="same thing")] * 4)
    result = await run_turn(nc, "t1", agent.config.id, "search")
    assert result.stop_reason == "loop_detected" and result.final.turn_completed.steps == 3
    last = result.of("function_return")[-1].function_return
    assert last.status == "error" and "loop guard" in last.result
    # The refused call still has its return: no orphaned call in the history.
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert state.queue[-1].role == "tool" and state.queue[-2].tool_calls[0].id == state.queue[-1].tool_call_id


async def test_session_start_login_event(orchestrator_factory, agent_factory, scripted_llm, nc):
    await orchestrator_factory(orchestrator_session_gap=0.0)
    agent = await agent_factory()
    await run_turn(nc, "t1", agent.config.id, "hi")
    assert not any('"login"' in m["content"] for m in agent_requests(scripted_llm)[0]["messages"][1:])
    await run_turn(nc, "t1", agent.config.id, "back again")
    msgs = agent_requests(scripted_llm)[1]["messages"]
    login = json.loads(msgs[-2]["content"])
    assert login["type"] == "login" and login["last_login"] != "never"
    assert json.loads(msgs[-1]["content"])["message"] == "back again"


async def test_memory_pressure_alert_once_per_crossing(orchestrator, agent_factory, scripted_llm, nc):
    base = await base_context_tokens(agent_factory, nc)
    reserved = 100
    agent = await agent_factory(context_window=int(base / 0.8) + reserved,
                                limits=common_pb2.AgentLimits(reserved_completion_tokens=reserved))
    scripted_llm.reset()
    first = await run_turn(nc, "t1", agent.config.id, "probe")
    alerts = first.of("system_alert")
    assert len(alerts) == 1 and "Memory pressure" in alerts[0].system_alert.text
    alert_msg = json.loads(agent_requests(scripted_llm)[0]["messages"][-1]["content"])
    assert alert_msg["type"] == "system_alert" and "archival memory" in alert_msg["message"]
    second = await run_turn(nc, "t1", agent.config.id, "again")
    assert second.of("system_alert") == []
    for r in agent_requests(scripted_llm):
        counted = TokenCounter().request("gpt-4o-mini", r["messages"], r["tools"])
        assert counted + reserved <= agent.config.context_window


async def test_compaction_summarizes_evicts_and_keeps_pairs(orchestrator, agent_factory, memory_stub,
                                                            scripted_llm, nc):
    base = await base_context_tokens(agent_factory, nc)
    reserved = 100
    window = int(base / 0.4) + reserved
    agent = await agent_factory(context_window=window, limits=common_pb2.AgentLimits(
        reserved_completion_tokens=reserved, keep_last_messages=3))
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    scripted_llm.reset()
    counter = TokenCounter()
    compacted_at = None
    for i in range(60):
        result = await run_turn(nc, "t1", agent.config.id,
                                f"fact number {i}: the zebra{i} likes " + "green grass " * 12)
        assert result.stop_reason == "end_turn"
        if summarizer_requests(scripted_llm):
            compacted_at = i
            break
    assert compacted_at is not None, "no compaction happened"
    assert any("summarised" in e.system_alert.text for e in result.of("system_alert"))
    # Every request stayed within the window (counted with the token library).
    for r in agent_requests(scripted_llm):
        assert counter.request("gpt-4o-mini", r["messages"], r["tools"]) + reserved <= window
    state = await memory_stub.GetContext(ref)
    assert state.summary.startswith("Summary of earlier conversation") and state.evicted_total > 0
    # The summary comes back in the next request.
    await run_turn(nc, "t1", agent.config.id, "what did I say first?")
    assert "Summary of earlier conversation" in agent_requests(scripted_llm)[-1]["messages"][0]["content"]
    # Calls and returns stay together.
    state = await memory_stub.GetContext(ref)
    assert state.queue[0].role != "tool"
    call_ids = {c.id for m in state.queue for c in m.tool_calls}
    assert all(m.tool_call_id in call_ids for m in state.queue if m.role == "tool")
    # Evicted messages are still in recall.

    async def found() -> bool:
        r = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="zebra0"))
        return any("zebra0 " in h.message.text for h in r.hits)
    await eventually(found, message="evicted message searchable in recall")
    assert not any("zebra0 " in m.text for m in state.queue)


async def test_provider_overflow_compacts_once_and_retries(orchestrator, agent_factory, memory_stub,
                                                           scripted_llm, nc):
    agent = await agent_factory(limits=common_pb2.AgentLimits(keep_last_messages=2))
    for i in range(4):
        await run_turn(nc, "t1", agent.config.id, f"message {i}")
    scripted_llm.reset()
    scripted_llm.push(OVERFLOW)
    result = await run_turn(nc, "t1", agent.config.id, "and now?")
    assert result.stop_reason == "end_turn" and result.replies == ["You said: and now?"]
    assert len(summarizer_requests(scripted_llm)) == 1
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert state.evicted_total > 0 and state.summary


async def test_provider_overflow_twice_stops_with_context_overflow(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory()
    await run_turn(nc, "t1", agent.config.id, "hello")
    scripted_llm.push(OVERFLOW, OVERFLOW)
    result = await run_turn(nc, "t1", agent.config.id, "again")
    assert result.stop_reason == "context_overflow"
