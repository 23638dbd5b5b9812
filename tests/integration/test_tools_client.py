"""Client-side tools through the whole stack: the turn pauses on the call (tool_call_requested on REST,
SSE and gRPC), the caller's result resumes it; schema-invalid arguments go back to the agent; a call
without a result times out (tool_timeout); a message sent while paused is queued, then runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from mnemo.v1 import agent_pb2, common_pb2
from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.helpers import eventually

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


def reply(text: str, heartbeat: bool = False) -> dict[str, Any]:
    return {"tool_call": {"name": "send_message", "arguments": {"message": text, "request_heartbeat": heartbeat}}}


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_call": {"name": name, "arguments": arguments}}


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def agent_with(stack: Stack, **body: Any) -> str:
    return (await stack.create_agent(**body))["id"]


async def test_a_client_tool_pauses_the_turn_and_its_result_resumes_it(module_stack: Stack,
                                                                        scripted_llm: Any) -> None:
    agent = await agent_with(module_stack, tools=[WEATHER])
    scripted_llm.push(call("get_weather", city="Paris"), reply("Sunny in Paris, 21 degrees."))
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "Weather in Paris?"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["stop_reason"] == "paused"
        requested = of(body["events"], "tool_call_requested")
        assert [(e["name"], json.loads(e["arguments"])) for e in requested] == [("get_weather", {"city": "Paris"})]
        assert body["events"][-1]["type"] == "turn_paused"
        call_id = requested[0]["call_id"]
        assert body["events"][-1]["call_ids"] == [call_id]
        assert not of(body["events"], "turn_completed")

        pending = (await http.get(f"/v1/agents/{agent}/pending-calls")).json()
        assert pending["turn_id"] == body["turn_id"]
        assert [(c["call_id"], c["kind"]) for c in pending["calls"]] == [(call_id, "client")]

        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": {"temp": 21}})
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["turn_id"] == body["turn_id"] and done["stop_reason"] == "end_turn"
        returns = of(done["events"], "function_return")
        assert [(e["call_id"], e["status"], e["result"]) for e in returns] == [(call_id, "ok", '{"temp": 21}')]
        assert [e["text"] for e in of(done["events"], "assistant_message")] == ["Sunny in Paris, 21 degrees."]

        # The model saw the result as the call's return, right after the call.
        last = scripted_llm.chat_requests()[-1]["messages"]
        i = next(i for i, m in enumerate(last) if m.get("tool_calls"))
        assert last[i]["tool_calls"][0]["id"] == call_id
        assert last[i + 1]["role"] == "tool" and last[i + 1]["tool_call_id"] == call_id
        assert '{\\"temp\\": 21}' in last[i + 1]["content"] or '{"temp": 21}' in last[i + 1]["content"]

        assert (await http.get(f"/v1/agents/{agent}/pending-calls")).json()["calls"] == []
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": "again"})
        assert r.status_code == 404 and call_id in r.text


async def test_schema_invalid_arguments_go_back_to_the_agent(module_stack: Stack, scripted_llm: Any) -> None:
    agent = await agent_with(module_stack, tools=[WEATHER])
    scripted_llm.push(call("get_weather", town="Paris"), reply("Sorry, let me fix that."))
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "Weather?"})
    body = r.json()
    assert body["stop_reason"] == "end_turn", body
    assert not of(body["events"], "tool_call_requested")
    (ret,) = of(body["events"], "function_return")
    assert ret["status"] == "error" and "schema" in ret["result"] and "city" in ret["result"]
    # the agent got the error and another step
    assert [e["text"] for e in of(body["events"], "assistant_message")] == ["Sorry, let me fix that."]


async def test_a_call_without_a_result_times_out(module_stack: Stack, scripted_llm: Any) -> None:
    agent = await agent_with(module_stack, tools=[WEATHER], tool_timeout_seconds=1)
    scripted_llm.push(call("get_weather", city="Oslo"))
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "Weather in Oslo?"})
        body = r.json()
        assert body["stop_reason"] == "paused"
        call_id = of(body["events"], "tool_call_requested")[0]["call_id"]

        async def completed() -> list[dict[str, Any]]:
            events = (await http.get(f"/v1/agents/{agent}/events", params={"turn_id": body["turn_id"]})).json()
            return of(events["events"], "turn_completed")
        await eventually(completed, timeout=30.0, interval=0.2, message="the paused call timed out")
        events = (await http.get(f"/v1/agents/{agent}/events", params={"turn_id": body["turn_id"]})).json()["events"]
        assert of(events, "turn_completed")[0]["stop_reason"] == "tool_timeout"
        (ret,) = of(events, "function_return")
        assert ret["call_id"] == call_id and ret["status"] == "error" and "timed out" in ret["result"]
        # the history holds the call and its return
        queue = json.loads((await http.get(f"/v1/agents/{agent}/export")).content)["state"]["queue"]
        ids = [m.get("tool_call_id") for m in queue if m["role"] == "tool"]
        assert call_id in ids
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": "late"})
        assert r.status_code == 404


async def test_a_message_sent_while_paused_is_queued_and_runs_after(module_stack: Stack, scripted_llm: Any) -> None:
    agent = await agent_with(module_stack, tools=[WEATHER])
    scripted_llm.push(call("get_weather", city="Rome"))
    async with module_stack.http(timeout=90.0) as http:
        first = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "Weather in Rome?"})).json()
        call_id = of(first["events"], "tool_call_requested")[0]["call_id"]
        queued = asyncio.create_task(http.post(f"/v1/agents/{agent}/messages", json={"message": "And tomorrow?"}))
        await asyncio.sleep(0)  # (the queued turn is published before the result below)
        scripted_llm.push(reply("Rome: warm."), reply("Tomorrow: warm too."))
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": "warm"})
        assert r.json()["stop_reason"] == "end_turn", r.text
        second = (await queued).json()
        assert second["stop_reason"] == "end_turn", second
        assert [e["text"] for e in of(second["events"], "assistant_message")] == ["Tomorrow: warm too."]
        # the queued message came after the first turn's whole exchange
        queue = json.loads((await http.get(f"/v1/agents/{agent}/export")).content)["state"]["queue"]
        roles = [(m["role"], m.get("tool_call_id", "")) for m in queue]
        assert roles.index(("tool", call_id)) < max(i for i, m in enumerate(queue)
                                                    if m["role"] == "user" and "tomorrow" in m["text"])


async def test_sse_and_grpc_show_the_request_and_grpc_resumes(module_stack: Stack, scripted_llm: Any) -> None:
    agent = await agent_with(module_stack)
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    scripted_llm.push(call("lookup", key="k1"))
    lookup = common_pb2.ToolSpec(name="lookup", parameters_json=json.dumps(
        {"type": "object", "properties": {"key": {"type": "string"}}}))
    events = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(
        agent_id=agent, message="look it up", tools=[lookup]), metadata=auth, timeout=30.0)]
    assert events[-1].type == "turn_paused"
    (requested,) = [e.tool_call_requested for e in events if e.type == "tool_call_requested"]
    assert requested.name == "lookup" and json.loads(requested.arguments) == {"key": "k1"}
    pending = await stub.ListPendingCalls(agent_pb2.GetAgentRequest(agent_id=agent), metadata=auth)
    assert [c.call_id for c in pending.calls] == [requested.call_id]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.SubmitApproval(agent_pb2.ApprovalRequest(agent_id=agent, call_id=requested.call_id,
                                                                     approve=True), metadata=auth, timeout=30.0):
            pass
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    scripted_llm.push(reply("found it"))
    rest = [e async for e in stub.SubmitToolResult(agent_pb2.ToolResultRequest(
        agent_id=agent, call_id=requested.call_id, result="value-1"), metadata=auth, timeout=30.0)]
    assert rest[-1].type == "turn_completed" and rest[-1].turn_completed.stop_reason == "end_turn"
    assert [e.function_return.result for e in rest if e.type == "function_return"] == ["value-1"]

    # SSE: the same turn's stream ends at the pause too
    scripted_llm.push(call("lookup", key="k2"))
    async with module_stack.http() as http:
        async with http.stream("POST", f"/v1/agents/{agent}/messages/stream",
                               json={"message": "again", "tools": [{"name": "lookup"}]}) as r:
            text = "".join([piece async for piece in r.aiter_text()])
        frames = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
        assert "tool_call_requested" in frames and frames[-1] == "turn_paused"
        call_id = (await http.get(f"/v1/agents/{agent}/pending-calls")).json()["calls"][0]["call_id"]
        scripted_llm.push(reply("done"))
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "error": "no such key"})
        done = r.json()
        assert [(e["status"], e["result"]) for e in of(done["events"], "function_return")] == [("error", "no such key")]


async def test_bad_tool_definitions_are_refused(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        for tools in ([{"name": "send_message"}], [{"name": "bad name!"}],
                      [{"name": "t", "parameters": {"type": "string"}}],
                      [{"name": "t", "parameters": {"type": "object", "properties": {"a": {"type": 5}}}}],
                      [{"name": "t"}, {"name": "t"}]):
            r = await http.post("/v1/agents", json={"name": "x", "tools": tools})
            assert r.status_code in (400, 422), (tools, r.status_code, r.text)
        agent = await agent_with(module_stack)
        r = await http.post(f"/v1/agents/{agent}/messages",
                            json={"message": "hi", "tools": [{"name": "core_memory_append"}]})
        assert r.status_code == 422 and "built-in" in r.text
        r = await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": "nope", "result": "x"})
        assert r.status_code == 404


async def test_tool_schemas_a_model_request_cannot_carry_are_refused(module_stack: Stack) -> None:
    """Regression (REST fuzzing): a client tool whose schema held an integer beyond 64 bits was
    accepted; its turn then failed inside the llm-proxy with an internal error ("Integer exceeds
    64-bit range") and was retried, never reporting why. NaN, which Python's JSON parser takes, is
    not JSON either."""
    huge = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**70}}}
    async with module_stack.http() as http:
        agent = await agent_with(module_stack)
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "hi", "tools": [{"name": "t",
                                                                                          "parameters": huge}]})
        assert r.status_code == 422 and "64-bit" in r.text, r.text
        r = await http.post("/v1/agents", json={"name": "x", "tools": [{"name": "t", "parameters": huge}]})
        assert r.status_code in (400, 422) and "64-bit" in r.text, r.text
        body = '{"message": "hi", "tools": [{"name": "t", "parameters": {"type": "object", "x": NaN}}]}'
        r = await http.post(f"/v1/agents/{agent}/messages", content=body,
                            headers={"content-type": "application/json"})
        assert r.status_code in (400, 422) and "NaN" in r.text, r.text
        # A schema of 64 bits at most still goes through.
        fits = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 2**64 - 1}}}
        r = await http.post("/v1/agents", json={"name": "x", "tools": [{"name": "t", "parameters": fits}]})
        assert r.status_code == 201, r.text
