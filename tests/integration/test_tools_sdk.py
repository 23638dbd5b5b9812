"""The Python client runs the tool loop itself (`send_message(..., tools=[...], on_tool_call=...)`,
sync and async, approvals with `on_approval`), and `mnemo run`'s chat shows tool calls and asks for
approvals; against the in-process stack over real HTTP."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from rich.console import Console

from mnemo.cli.chat import ChatSession
from mnemo.client import AsyncMnemo, Mnemo
from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.integration.test_tools_client import call, reply

ADD = {"name": "add", "description": "Add two numbers.",
       "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                      "required": ["a", "b"]}}


async def test_sync_client_runs_the_tool_and_gets_the_reply(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent())["id"]
    seen: list[tuple[str, dict[str, Any]]] = []

    def on_tool_call(name: str, arguments: dict[str, Any]) -> Any:
        seen.append((name, arguments))
        if arguments["a"] < 0:
            raise ValueError("negative numbers are not supported")
        return arguments["a"] + arguments["b"]

    scripted_llm.push(call("add", a=2, b=3), call("add", a=-1, b=1), reply("2 + 3 = 5"))

    def run() -> Any:
        with Mnemo(module_stack.base_url, module_stack.api_key) as client:
            return client.agents.send_message(agent, "add 2 and 3", tools=[ADD], on_tool_call=on_tool_call)
    result = await asyncio.to_thread(run)
    assert seen == [("add", {"a": 2, "b": 3}), ("add", {"a": -1, "b": 1})]
    assert result.stop_reason == "end_turn" and result.reply == "2 + 3 = 5"
    returns = [(e.status, e.result) for e in result.events if e.type == "function_return"]
    assert returns == [("ok", "5"), ("error", "ValueError: negative numbers are not supported")]
    assert [e.type for e in result.events].count("tool_call_requested") == 2


async def test_async_client_with_async_handlers_and_approvals(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(tool_rules=[{"tool": "add", "requires_approval": True}]))["id"]
    decisions: list[str] = []

    async def on_tool_call(name: str, arguments: dict[str, Any]) -> Any:
        await asyncio.sleep(0)
        return {"sum": arguments["a"] + arguments["b"]}

    async def on_approval(name: str, arguments: dict[str, Any]) -> Any:
        decisions.append(name)
        return (arguments["a"] < 100, "too big")

    scripted_llm.push(call("add", a=1, b=2), call("add", a=500, b=1), reply("done"))
    async with AsyncMnemo(module_stack.base_url, module_stack.api_key) as client:
        result = await client.agents.send_message(agent, "go", tools=[ADD], on_tool_call=on_tool_call,
                                                  on_approval=on_approval)
        assert decisions == ["add", "add"] and result.stop_reason == "end_turn"
        returns = [(e.status, e.result) for e in result.events if e.type == "function_return"]
        assert returns == [("ok", '{"sum": 3}'), ("error", "the user denied this call: too big")]

        scripted_llm.push(call("add", a=1, b=1))  # no approval handler: the turn comes back paused
        paused = await client.agents.send_message(agent, "again", tools=[ADD], on_tool_call=on_tool_call)
        assert paused.paused
        pending = await client.agents.pending_calls(agent)
        assert [c.kind for c in pending.calls] == ["approval"]
        scripted_llm.push(reply("fine"))
        done = await client.agents.approve(agent, pending.calls[0].call_id, approve=False)
        assert done.stop_reason == "end_turn"


async def test_the_chat_shows_tool_calls_and_asks_for_approvals(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = (await module_stack.create_agent(tool_rules=[
        {"tool": "core_memory_append", "requires_approval": True}]))["id"]
    scripted_llm.push(call("core_memory_append", label="human", content="Owns a cat", request_heartbeat=True),
                      reply("I will not write it down."))
    out = io.StringIO()

    def chat() -> None:
        with Mnemo(module_stack.base_url, module_stack.api_key) as client:
            session = ChatSession(client, Console(file=out, width=200), client.agents.get(agent_id),
                                  answers=io.StringIO("n\nprivate\n"))
            session.send("I own a cat")
    await asyncio.to_thread(chat)
    text = out.getvalue()
    assert "core_memory_append" in text and "needs your approval" in text
    assert "the user denied this call: private" in text and "I will not write it down." in text
