"""Tool rules per agent: requires_approval (approve / deny over REST and gRPC), terminal, run_first,
max_calls_per_turn; the scripted model makes the calls."""

from __future__ import annotations

from typing import Any

from mnemo.v1 import agent_pb2
from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.integration.test_tools_client import WEATHER, call, of, reply


def append(content: str, heartbeat: bool = True) -> dict[str, Any]:
    return call("core_memory_append", label="human", content=content, request_heartbeat=heartbeat)


async def test_an_approved_client_tool_then_waits_for_its_result(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(tools=[WEATHER], tool_rules=[
        {"tool": "get_weather", "requires_approval": True}]))["id"]
    scripted_llm.push(call("get_weather", city="Lima"))
    async with module_stack.http() as http:
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "Lima?"})).json()
        assert body["stop_reason"] == "paused"
        (asked,) = of(body["events"], "approval_requested")
        assert not of(body["events"], "tool_call_requested") and asked["name"] == "get_weather"
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": asked["call_id"], "result": "x"})
        assert r.status_code == 409, r.text  # it waits for a decision, not a result
        approved = (await http.post(f"/v1/agents/{agent}/approvals",
                                    json={"call_id": asked["call_id"], "approve": True})).json()
        assert approved["stop_reason"] == "paused"
        assert [e["call_id"] for e in of(approved["events"], "tool_call_requested")] == [asked["call_id"]]
        scripted_llm.push(reply("Lima: grey."))
        done = (await http.post(f"/v1/agents/{agent}/tool-results",
                                json={"call_id": asked["call_id"], "result": "grey"})).json()
        assert done["stop_reason"] == "end_turn" and done["events"][-1]["type"] == "turn_completed"


async def test_approval_of_a_builtin_function_runs_it_and_a_denial_tells_the_agent_why(
        module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(human="Name: Ada", tool_rules=[
        {"tool": "core_memory_append", "requires_approval": True}]))["id"]
    async with module_stack.http() as http:
        scripted_llm.push(append("Likes chess"), reply("Noted."))
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "I like chess"})).json()
        call_id = of(body["events"], "approval_requested")[0]["call_id"]
        human = (await http.get(f"/v1/agents/{agent}/memory/human")).json()["value"]
        assert "chess" not in human  # nothing ran before the approval
        done = (await http.post(f"/v1/agents/{agent}/approvals", json={"call_id": call_id, "approve": True})).json()
        assert done["stop_reason"] == "end_turn", done
        assert [e["status"] for e in of(done["events"], "function_return")] == ["ok"]
        assert "Likes chess" in (await http.get(f"/v1/agents/{agent}/memory/human")).json()["value"]

        scripted_llm.push(append("Hates tea"))
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "I hate tea"})).json()
        call_id = of(body["events"], "approval_requested")[0]["call_id"]
    stub = module_stack.agent_stub()
    scripted_llm.push(reply("Understood, I won't note it."))
    events = [e async for e in stub.SubmitApproval(agent_pb2.ApprovalRequest(
        agent_id=agent, call_id=call_id, approve=False, reason="keep that private"),
        metadata=module_stack.grpc_auth(), timeout=30.0)]
    (ret,) = [e.function_return for e in events if e.type == "function_return"]
    assert ret.status == "error" and "denied" in ret.result and "keep that private" in ret.result
    assert events[-1].type == "turn_completed"
    assert "keep that private" in str(scripted_llm.chat_requests()[-1]["messages"])  # the agent was told
    async with module_stack.http() as http:
        assert "tea" not in (await http.get(f"/v1/agents/{agent}/memory/human")).json()["value"]


async def test_a_terminal_tool_ends_the_turn(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(tools=[WEATHER], tool_rules=[
        {"tool": "get_weather", "terminal": True}, {"tool": "archival_memory_insert", "terminal": True}]))["id"]
    async with module_stack.http() as http:
        scripted_llm.push(call("archival_memory_insert", content="a fact", request_heartbeat=True))
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "remember"})).json()
        assert body["stop_reason"] == "end_turn" and len(scripted_llm.chat_requests()) == 1
        scripted_llm.reset()
        scripted_llm.push(call("get_weather", city="Nice"))
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "Nice?"})).json()
        call_id = of(body["events"], "tool_call_requested")[0]["call_id"]
        done = (await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": "ok"})).json()
        assert done["stop_reason"] == "end_turn"
        assert len(scripted_llm.chat_requests()) == 1  # no step after the terminal tool's result


async def test_run_first_and_max_calls_per_turn(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(tool_rules=[
        {"tool": "archival_memory_search", "run_first": True},
        {"tool": "core_memory_append", "max_calls_per_turn": 1}]))["id"]
    scripted_llm.push(append("one"),
                      call("archival_memory_search", query="x", request_heartbeat=True),
                      append("two"), append("three"), reply("done"))
    async with module_stack.http() as http:
        body = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "go"})).json()
    returns = [(e["name"], e["status"], e["result"]) for e in of(body["events"], "function_return")]
    assert returns[0][:2] == ("core_memory_append", "error") and "must be called first" in returns[0][2]
    assert returns[1][:2] == ("archival_memory_search", "ok")
    assert returns[2][:2] == ("core_memory_append", "ok")
    assert returns[3][:2] == ("core_memory_append", "error") and "at most 1" in returns[3][2]
    requests = scripted_llm.chat_requests()
    assert requests[0]["tool_choice"] == {"type": "function", "function": {"name": "archival_memory_search"}}
    assert requests[2].get("tool_choice") in (None, "auto")
