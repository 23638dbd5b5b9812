"""Mnemo as an MCP server: the official SDK's MCP client against `/mcp` (streamable HTTP, the tenant's
key) and against `mnemo mcp` (stdio, a process). Every tool; tenant isolation as on REST."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.helpers import ENV_BASE, eventually, venv_bin

TOOLS = {"list_agents", "read_core_memory", "edit_core_memory", "search_archival", "insert_archival",
         "search_recall", "load_document", "send_message"}


@asynccontextmanager
async def http_client(stack: Stack, api_key: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=60.0) as http:
        async with Client(streamable_http_client(f"{stack.base_url}/mcp", http_client=http)) as client:
            yield client


async def result(client: Client, tool: str, **args: Any) -> Any:
    r = await client.call_tool(tool, args)
    assert not r.is_error, (tool, r.content)
    return json.loads(r.content[0].text) if len(r.content) == 1 else [json.loads(c.text) for c in r.content]


async def test_every_tool_over_streamable_http(module_stack: Stack, scripted_llm: Any) -> None:
    agent = (await module_stack.create_agent(name="mcp-agent", human="Name: Ada"))["id"]
    async with http_client(module_stack, module_stack.api_key) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        agents = (await client.call_tool("list_agents", {})).structured_content["result"]
        assert agent in [a["id"] for a in agents]

        memory = await result(client, "read_core_memory", agent_id=agent)
        assert memory["blocks"]["human"] == "Name: Ada"
        block = await result(client, "edit_core_memory", agent_id=agent, label="human", value="Likes tea",
                             mode="append")
        assert block["value"] == "Name: Ada\nLikes tea"

        inserted = await result(client, "insert_archival", agent_id=agent, text="The comet returns in 2061.",
                                tags=["space"])
        assert len(inserted["ids"]) == 1
        loaded = await result(client, "load_document", agent_id=agent, filename="notes.md",
                              text="# Notes\nThe lighthouse keeper is called Mira.")
        assert loaded["passages"] >= 1
        hits = await result(client, "search_archival", agent_id=agent, query="comet")
        assert any("2061" in h["text"] for h in hits["hits"])
        hits = await result(client, "search_archival", agent_id=agent, query="lighthouse keeper")
        assert any("Mira" in h["text"] for h in hits["hits"])

        answer = await result(client, "send_message", agent_id=agent, message="The password is pelican.")
        assert answer["reply"] == "You said: The password is pelican." and answer["stop_reason"] == "end_turn"

        async def recalled() -> bool:
            found = await result(client, "search_recall", agent_id=agent, query="pelican")
            return any("pelican" in m["text"] for m in found["messages"])
        await eventually(recalled, timeout=20.0, interval=0.2, message="the turn reached recall")
        dated = await result(client, "search_recall", agent_id=agent, start="2000-01-01", end="2999-12-31")
        assert dated["total"] >= 2

        bad = await client.call_tool("read_core_memory", {"agent_id": "agent-nope"})
        assert bad.is_error and "not found" in bad.content[0].text


async def test_tenant_isolation_on_mcp(module_stack: Stack) -> None:
    a = await module_stack.new_tenant("mcp-a")
    b = await module_stack.new_tenant("mcp-b")
    a_agent = (await module_stack.create_agent(a.api_key, persona="SECRET-PERSONA-MCP"))["id"]
    async with http_client(module_stack, b.api_key) as client:
        assert a_agent not in json.dumps((await client.call_tool("list_agents", {})).structured_content)
        for tool, args in [("read_core_memory", {}), ("search_archival", {"query": "x"}),
                           ("edit_core_memory", {"label": "persona", "value": "pwned"}),
                           ("insert_archival", {"text": "pwned"}), ("search_recall", {}),
                           ("load_document", {"filename": "x.txt", "text": "pwned"}),
                           ("send_message", {"message": "hi"})]:
            r = await client.call_tool(tool, {"agent_id": a_agent, **args})
            assert r.is_error and "SECRET" not in str(r.content), (tool, r.content)
    async with http_client(module_stack, a.api_key) as client:
        memory = await result(client, "read_core_memory", agent_id=a_agent)
        assert memory["blocks"]["persona"] == "SECRET-PERSONA-MCP"
        assert memory["counts"]["archival"] == 0
    async with httpx.AsyncClient() as http:  # no key, a bad key: 401 before any MCP handling
        for headers in ({}, {"Authorization": "Bearer mk-nope"}):
            r = await http.post(f"{module_stack.base_url}/mcp", headers=headers,
                                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert r.status_code == 401, r.text


async def test_mnemo_mcp_over_stdio(module_stack: Stack) -> None:
    agent = (await module_stack.create_agent(name="stdio-agent", human="Name: Bo"))["id"]
    env = {**ENV_BASE, "MNEMO_BASE_URL": module_stack.base_url, "MNEMO_API_KEY": module_stack.api_key}
    params = StdioServerParameters(command=venv_bin("mnemo"), args=["mcp"], env=env)
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        memory = await result(client, "read_core_memory", agent_id=agent)
        assert memory["blocks"]["human"] == "Name: Bo"
        answer = await result(client, "send_message", agent_id=agent, message="ping over stdio")
        assert answer["reply"] == "You said: ping over stdio"
