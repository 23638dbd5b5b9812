"""Tools of MCP servers (tests/mcp_tool_server.py, written with the official SDK) as real processes:
over stdio (a child of the orchestrator, registered by the admin) and over streamable HTTP (a server
process, registered by the tenant with a secret header). The scripted model calls them; results,
truncation, tool errors, timeouts, a server that dies mid-call, a server that is down, spans in the
turn's trace; tenant B can neither see nor use tenant A's servers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_observability import ancestors, span_exporter  # noqa: F401
from tests.fixtures_stack import ADMIN_KEY, Stack, module_stack  # noqa: F401
from tests.helpers import ENV_BASE, free_port, refused_port, stop_process, wait_port
from tests.integration.test_tools_client import call, of, reply

SERVER_SCRIPT = str(Path(__file__).resolve().parents[1] / "mcp_tool_server.py")
TOOLS = ["add", "echo", "long_text", "fail", "sleep", "die", "whoami"]


def start_http_server(port: int) -> subprocess.Popen[bytes]:
    """The test MCP server as a streamable-HTTP server process on `port`, once it listens."""
    proc = subprocess.Popen([sys.executable, SERVER_SCRIPT, "http", str(port)], env=ENV_BASE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=30)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@pytest.fixture(scope="module")
def http_tool_server() -> Iterator[str]:
    """The test MCP server over streamable HTTP; its URL."""
    port = free_port()
    proc = start_http_server(port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc)


async def register_stdio(stack: Stack, tenant_id: str, **extra: Any) -> dict[str, Any]:
    async with stack.http(ADMIN_KEY) as admin:
        r = await admin.post(f"/v1/admin/tenants/{tenant_id}/mcp-servers", json={
            "name": "local-tools", "transport": "stdio", "command": sys.executable, "args": [SERVER_SCRIPT],
            **extra})
        assert r.status_code == 201, r.text
        return r.json()


async def attached_agent(stack: Stack, server_id: str, api_key: str | None = None, **body: Any) -> str:
    agent = (await stack.create_agent(api_key, **body))["id"]
    async with stack.http(api_key) as http:
        r = await http.post(f"/v1/agents/{agent}/mcp-tools", json={"server_id": server_id})
        assert r.status_code == 200, r.text
        assert sorted(t["name"] for t in r.json()["tools"]) == sorted(TOOLS)
        assert {t["kind"] for t in r.json()["tools"]} == {"mcp"}
    return agent


async def turn(stack: Stack, agent: str, message: str = "go") -> dict[str, Any]:
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": message})
        assert r.status_code == 200, r.text
        return r.json()


def returns(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["name"], e["status"], e["result"]) for e in of(body["events"], "function_return")]


async def test_a_stdio_server_tools_are_listed_attached_and_called(module_stack: Stack, scripted_llm: Any,
                                                                   span_exporter: Any) -> None:
    async with module_stack.http() as http:  # a tenant key may not register a command
        r = await http.post("/v1/mcp-servers", json={"name": "x", "transport": "stdio", "command": "/bin/sh"})
        assert r.status_code == 403 and "admin" in r.text
    server = await register_stdio(module_stack, module_stack.tenant_id)
    async with module_stack.http() as http:
        listed = (await http.get(f"/v1/mcp-servers/{server['id']}/tools")).json()["tools"]
        assert sorted(t["name"] for t in listed) == sorted(TOOLS)
        assert '"a"' in next(t for t in listed if t["name"] == "add")["parameters_json"]
    agent = await attached_agent(module_stack, server["id"], limits={"function_result_max_chars": 300})
    scripted_llm.push(call("add", a=2, b=3), call("long_text", n=5000), call("fail", message="no luck"),
                      reply("done"))
    body = await turn(module_stack, agent)
    got = returns(body)
    assert got[0] == ("add", "ok", "5")
    assert got[1][1] == "ok" and len(got[1][2]) <= 300 and "truncated" in got[1][2]
    assert got[2][:2] == ("fail", "error") and "no luck" in got[2][2]
    assert body["stop_reason"] == "end_turn"
    spans = span_exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "orchestrator.mcp_call"]
    assert [s.attributes["mnemo.tool"] for s in calls] == ["add", "long_text", "fail"]
    assert {s.attributes["mnemo.mcp.transport"] for s in calls} == {"stdio"}
    assert any(a.name == "orchestrator.step" for a in ancestors(calls[0], spans))


async def test_a_server_that_dies_mid_call_fails_the_call_and_is_started_again(module_stack: Stack,
                                                                              scripted_llm: Any) -> None:
    server = await register_stdio(module_stack, module_stack.tenant_id, timeout_seconds=2)
    agent = await attached_agent(module_stack, server["id"])
    scripted_llm.push(call("echo", text="one"), call("die"), call("echo", text="two"), call("sleep", seconds=30),
                      reply("ok"))
    body = await turn(module_stack, agent)
    (echo1, died, echo2, slept) = returns(body)
    assert echo1[1] == "ok" and died[:2] == ("die", "error") and "unavailable" in died[2]
    assert echo2[1] == "ok" and echo1[2].split("pid ")[1] != echo2[2].split("pid ")[1]  # a new process
    assert slept[:2] == ("sleep", "error") and "did not answer within 2 seconds" in slept[2]
    assert body["stop_reason"] == "end_turn"


async def test_an_http_server_with_a_secret_header(module_stack: Stack, scripted_llm: Any,
                                                   http_tool_server: str) -> None:
    async with module_stack.http() as http:
        r = await http.post("/v1/mcp-servers", json={"name": "remote", "transport": "http", "url": http_tool_server,
                                                     "headers": {"Authorization": "Bearer secret-123"}})
        assert r.status_code == 201, r.text
        server = r.json()
        assert server["headers"] == {"Authorization": "***"}
        listing = (await http.get("/v1/mcp-servers")).json()["servers"]
        assert server["id"] in [s["id"] for s in listing] and "secret-123" not in str(listing)
    agent = await attached_agent(module_stack, server["id"])
    scripted_llm.push(call("whoami"), call("add", a=40, b=2), reply("ok"))
    got = returns(await turn(module_stack, agent))
    assert got == [("whoami", "ok", "Bearer secret-123"), ("add", "ok", "42")]


async def test_a_server_that_is_down_fails_clearly(module_stack: Stack, scripted_llm: Any) -> None:
    with refused_port() as nowhere:
        async with module_stack.http() as http:
            r = await http.post("/v1/mcp-servers", json={"name": "nowhere", "transport": "http",
                                                         "url": f"http://127.0.0.1:{nowhere}/mcp"})
            r = await http.get(f"/v1/mcp-servers/{r.json()['id']}/tools")
            assert r.status_code == 503 and "nowhere" in r.text
    port = free_port()
    proc = start_http_server(port)
    try:
        async with module_stack.http() as http:
            r = await http.post("/v1/mcp-servers", json={"name": "flaky", "transport": "http",
                                                         "url": f"http://127.0.0.1:{port}/mcp"})
            agent = await attached_agent(module_stack, r.json()["id"])
    finally:
        stop_process(proc)  # the server goes down: its tools fail, the turn goes on
    scripted_llm.push(call("add", a=1, b=1), reply("the tool is down"))
    body = await turn(module_stack, agent)
    (added,) = returns(body)
    assert added[:2] == ("add", "error") and "flaky is unavailable" in added[2]
    assert [e["text"] for e in of(body["events"], "assistant_message")] == ["the tool is down"]


async def test_tenant_b_cannot_see_or_use_tenant_a_servers(module_stack: Stack, http_tool_server: str) -> None:
    a = await module_stack.new_tenant("mcp-a")
    b = await module_stack.new_tenant("mcp-b")
    async with module_stack.http(a.api_key) as http:
        r = await http.post("/v1/mcp-servers", json={"name": "a-tools", "transport": "http", "url": http_tool_server,
                                                     "headers": {"X-Key": "A-SECRET"}})
        a_server = r.json()["id"]
    b_agent = (await module_stack.create_agent(b.api_key))["id"]
    async with module_stack.http(b.api_key) as http:
        assert a_server not in (await http.get("/v1/mcp-servers")).text
        for r in (await http.get(f"/v1/mcp-servers/{a_server}/tools"),
                  await http.delete(f"/v1/mcp-servers/{a_server}"),
                  await http.post(f"/v1/agents/{b_agent}/mcp-tools", json={"server_id": a_server})):
            assert r.status_code == 404, r.text
            assert "A-SECRET" not in r.text
        assert (await http.get(f"/v1/agents/{b_agent}")).json()["tools"] == []
    async with module_stack.http(a.api_key) as http:
        assert a_server in (await http.get("/v1/mcp-servers")).text
