"""Each agent function, error feedback for each error kind, search pagination and truncation."""

from __future__ import annotations

import json

import pytest

from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import agent_factory, chat_llm, orchestrator, run_turn  # noqa: F401
from tests.helpers import eventually


def call(name: str, heartbeat: bool = False, **args: object) -> dict:
    return {"tool_call": {"name": name, "arguments": {**args, "request_heartbeat": heartbeat}}}


def raw_call(name: str, arguments: str) -> dict:
    return {"tool_call": {"name": name, "arguments": arguments}}


def tool_results(request: dict) -> list[dict]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize("bad,fragment", [
    (raw_call("launch_rockets", '{"request_heartbeat": false}'), "unknown function"),
    (raw_call("send_message", 'message = hi'), "not valid JSON"),
    (raw_call("core_memory_append", '{"label": "human", "request_heartbeat": false}'), "missing required"),
    (call("core_memory_append", label="human", content="x" * 3000), "over its limit"),
    (call("core_memory_replace", label="human", old_content="Bob", new_content="Al"), "not found"),
    (call("core_memory_append", label="nope", content="x"), "no core memory block"),
    (call("conversation_search_date", start_date="yesterday", end_date="2026-01-01"), "not a date"),
])
async def test_errors_go_back_to_the_agent_with_a_heartbeat(orchestrator, agent_factory, scripted_llm, nc,
                                                            bad, fragment):
    agent = await agent_factory()
    scripted_llm.push(bad, call("send_message", message="sorry, fixed"))
    result = await run_turn(nc, "t1", agent.config.id, "go")
    assert result.stop_reason == "end_turn" and result.final.turn_completed.steps == 2
    # Either our own validation (a Failed function result) or the llm-proxy's tool-call parsing
    # (ChatResponse.tool_call_error, fed back as a system alert) reports it.
    reported = [e.function_return.result for e in result.of("function_return")
                if e.function_return.status == "error"] + [e.system_alert.text for e in result.of("system_alert")]
    assert any(fragment in r for r in reported), reported
    second = scripted_llm.chat_requests()[1]["messages"]
    assert any(fragment in m["content"] for m in second[-3:] if m["role"] in ("tool", "user"))
    assert result.replies == ["sorry, fixed"]


async def test_core_memory_replace_and_append_are_committed(orchestrator, agent_factory, memory_stub,
                                                            scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push(
        {"tool_calls": [
            {"name": "core_memory_replace", "arguments": {"label": "human", "old_content": "Chad",
                                                          "new_content": "Brad", "request_heartbeat": False}},
            {"name": "core_memory_append", "arguments": {"label": "persona", "content": "I like jazz.",
                                                         "request_heartbeat": False}}]})
    result = await run_turn(nc, "t1", agent.config.id, "my name is Brad")
    assert result.stop_reason == "end_turn"
    assert [e.function_return.status for e in result.of("function_return")] == ["ok", "ok"]
    core = await memory_stub.GetCoreMemory(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    blocks = {b.label: b.value for b in core.blocks}
    assert blocks["human"] == "First name: Brad"
    assert blocks["persona"].endswith("\nI like jazz.")


async def test_archival_insert_then_search(orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    agent = await agent_factory()
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    scripted_llm.push(call("archival_memory_insert", True, content="The user's cat is called Miso."),
                      call("send_message", message="saved"))
    result = await run_turn(nc, "t1", agent.config.id, "remember my cat Miso")
    assert result.of("function_return")[0].function_return.status == "ok"
    state = await memory_stub.GetContext(ref)
    assert state.archival_count == 1
    scripted_llm.push(call("archival_memory_search", True, query="cat name"), call("send_message", message="Miso"))
    result = await run_turn(nc, "t1", agent.config.id, "what is my cat called?")
    found = result.of("function_return")[0].function_return
    assert found.status == "ok" and "Miso" in found.result and "1 of 1" in found.result


async def test_archival_search_pagination_and_truncation(orchestrator, agent_factory, memory_stub,
                                                         scripted_llm, nc):
    agent = await agent_factory(limits=common_pb2.AgentLimits(function_result_max_chars=400))
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text=f"fact {i} about gardening " + "soil " * 30) for i in range(12)]))
    scripted_llm.push(call("archival_memory_search", True, query="gardening"),
                      call("archival_memory_search", True, query="gardening", page=2),
                      call("send_message", message="done"))
    result = await run_turn(nc, "t1", agent.config.id, "tell me about gardening")
    first, last = [e.function_return.result for e in result.of("function_return")]
    assert "of 12 results" in first and "truncated" in first and "page=1" in first
    assert len(first) <= 400
    assert "page 2" in last and "page=3" not in last
    assert len(tool_results(scripted_llm.chat_requests()[1])[-1]["message"]) <= 400


async def test_conversation_search_and_by_date(orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    agent = await agent_factory()
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    await run_turn(nc, "t1", agent.config.id, "my favourite colour is teal")

    async def indexed() -> bool:
        r = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="teal"))
        return r.total > 0
    # Generous: the shared recall-indexer consumer may first work through earlier tests' backlog.
    await eventually(indexed, timeout=60.0, message="recall indexed")
    state = await memory_stub.GetContext(ref)
    day = state.queue[-1].created_at[:10]
    scripted_llm.push(call("conversation_search", True, query="teal"),
                      call("conversation_search_date", True, start_date=day, end_date=day),
                      call("send_message", message="teal"))
    result = await run_turn(nc, "t1", agent.config.id, "what colour do I like?")
    by_text, by_date = [e.function_return for e in result.of("function_return")]
    assert by_text.status == "ok" and "favourite colour is teal" in by_text.result
    assert by_date.status == "ok" and "results for dates" in by_date.result


async def test_pause_heartbeats_ends_the_chain(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push(call("pause_heartbeats", True, minutes=5))
    result = await run_turn(nc, "t1", agent.config.id, "be quiet")
    assert result.stop_reason == "end_turn" and result.final.turn_completed.steps == 1
    assert "paused" in result.of("function_return")[0].function_return.result


async def test_text_without_a_call_is_an_inner_thought(orchestrator, agent_factory, scripted_llm, nc):
    agent = await agent_factory()
    scripted_llm.push({"content": "Hmm, nothing to say."})
    result = await run_turn(nc, "t1", agent.config.id, "...")
    assert [e.inner_thought.text for e in result.of("inner_thought")] == ["Hmm, nothing to say."]
    assert result.replies == [] and result.stop_reason == "end_turn"
