"""The step loop against real NATS, the real memory service and the scripted model."""

from __future__ import annotations

import json

from mnemo.v1 import common_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_observability import span_exporter  # noqa: F401
from tests.fixtures_orchestrator import agent_factory, chat_llm, orchestrator, run_turn  # noqa: F401


def call(name: str, heartbeat: bool = False, **args: object) -> dict:
    return {"tool_call": {"name": name, "arguments": {**args, "request_heartbeat": heartbeat}}}


async def test_simple_turn_replies_and_commits(orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    agent = await agent_factory()
    result = await run_turn(nc, "t1", agent.config.id, "hello there")
    assert result.stop_reason == "end_turn"
    assert result.replies == ["You said: hello there"]
    usage = result.of("usage")
    assert len(usage) == 1 and usage[0].usage.context_tokens > 0
    assert result.final.turn_completed.steps == 1
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    roles = [m.role for m in state.queue]
    assert roles[-3:] == ["user", "assistant", "tool"]
    assert state.queue[-3].text == "hello there"
    assert state.turn.completed and state.turn.stop_reason == "end_turn"
    # The model saw the system prompt, the core memory and the packed user message.
    req = scripted_llm.chat_requests()[0]
    system = req["messages"][0]["content"]
    assert "send_message" in system and "I am Sam" in system and "### Memory metadata" in system
    packed = json.loads(req["messages"][-1]["content"])
    assert packed["type"] == "user_message" and packed["message"] == "hello there"
    assert {t["function"]["name"] for t in req["tools"]} >= {"send_message", "archival_memory_search"}


async def test_heartbeat_chain(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push(
        {"content": "Let me note that.", **call("core_memory_append", True, label="human", content="Likes tea")},
        call("send_message", False, message="Noted!"),
    )
    result = await run_turn(nc, "t1", agent.config.id, "I like tea")
    assert result.stop_reason == "end_turn"
    assert result.final.turn_completed.steps == 2
    assert [e.type for e in result.events] == [
        "inner_thought", "function_call", "function_return", "usage", "assistant_message", "usage",
        "turn_completed"]
    assert result.replies == ["Noted!"]
    second = scripted_llm.chat_requests()[1]["messages"]
    assert second[-2]["role"] == "tool" and json.loads(second[-2]["content"])["status"] == "OK"
    assert json.loads(second[-1]["content"])["type"] == "heartbeat"
    assert "Likes tea" in second[0]["content"]


async def test_turn_span_continues_the_submitters_trace(orchestrator, agent_factory, scripted_llm, nc,
                                                        span_exporter):
    from mnemo.common import ids, subjects, telemetry
    from tests.fixtures_orchestrator import EventCollector

    agent = await agent_factory()
    js = nc.jetstream()
    with telemetry.span("gateway.send_message") as parent:
        headers = telemetry.inject()
    trace_id = parent.get_span_context().trace_id
    turn_id = ids.new_id("turn")
    req = common_pb2.TurnRequest(turn_id=turn_id, tenant_id="t1", agent_id=agent.config.id, message="hi")
    async with EventCollector(js, "t1", agent.config.id) as events:
        await js.publish(subjects.turns_subject("t1", agent.config.id), req.SerializeToString(),
                         headers={**headers, "Nats-Msg-Id": turn_id})
        await events.wait_turn(turn_id)
    from tests.helpers import eventually

    # The turn span ends once the turn is acknowledged, just after its last events. Spans of this
    # trace only: the session's work queue may hold other tests' turns, which this orchestrator runs too.
    def of_turn(name: str) -> list:
        return [s for s in span_exporter.get_finished_spans()
                if s.name == name and s.context.trace_id == trace_id]

    await eventually(lambda: of_turn("orchestrator.turn") and of_turn("orchestrator.step"))
    turn_span, step_span = of_turn("orchestrator.turn")[0], of_turn("orchestrator.step")[0]
    assert turn_span.parent is not None and turn_span.parent.span_id == parent.get_span_context().span_id
    assert step_span.parent.span_id == turn_span.context.span_id
    assert turn_span.attributes["mnemo.turn_id"] == turn_id
    assert step_span.attributes["mnemo.step"] == 1 and step_span.attributes["mnemo.agent_id"] == agent.config.id


async def test_model_error_ends_the_turn_with_turn_failed(orchestrator, agent_factory, memory_stub,
                                                          scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push({"error": {"status": 400, "body": {"error": {
        "message": "unsupported parameter", "type": "invalid_request_error", "code": "bad_param"}}}})
    result = await run_turn(nc, "t1", agent.config.id, "hello")
    assert result.final.type == "turn_failed" and "model call failed" in result.final.turn_failed.error
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert state.turn.completed and state.turn.stop_reason == "error"
    assert state.queue[-1].role == "user"  # the user's message is kept; nothing half-done
    # The agent is not stuck: the next turn runs normally.
    assert (await run_turn(nc, "t1", agent.config.id, "again")).stop_reason == "end_turn"


async def test_a_transient_model_failure_hands_the_turn_back_instead_of_failing_it(
        orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    """Regression: a provider answering 5xx (after the llm-proxy's own retries) failed the turn. Now
    the turn is handed back, redelivered and completes once the provider answers again."""
    agent = await agent_factory()
    outage = {"error": {"status": 503, "body": {"error": {"message": "overloaded", "type": "server_error"}}}}
    scripted_llm.push(*[outage] * 4)  # more than the proxy retries within one delivery
    result = await run_turn(nc, "t1", agent.config.id, "hello through an outage")
    assert result.stop_reason == "end_turn", result.final
    assert len(scripted_llm.chat_requests()) >= 5
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert [m.text for m in state.queue if m.role == "user"].count("hello through an outage") == 1


async def test_turn_for_another_tenants_agent_fails_cleanly(orchestrator, agent_factory, memory_stub,
                                                             scripted_llm, nc):
    agent = await agent_factory(tenant="t1")
    result = await run_turn(nc, "t2", agent.config.id, "let me in")
    assert result.final.type == "turn_failed" and result.final.turn_failed.code == "NOT_FOUND"
    assert scripted_llm.chat_requests() == []
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert not any(m.text == "let me in" for m in state.queue)
