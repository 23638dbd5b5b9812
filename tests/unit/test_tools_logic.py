"""Tool logic of the edges without I/O: who may register a stdio MCP server, how a registration is
shown, and which paused call the Python client answers next."""

from __future__ import annotations

import pytest

from mnemo.client.models import Event
from mnemo.client.tool_loop import approval_answer, tool_answer, waiting_calls
from mnemo.common.errors import InvalidArgument
from mnemo.gateway.convert import public_mcp_server
from mnemo.gateway.tools import stdio_allowed
from mnemo.memory.mcp_servers import check_server
from mnemo.v1 import memory_pb2


def test_stdio_allow_list() -> None:
    assert not stdio_allowed("", "/usr/bin/tool")
    assert stdio_allowed("/usr/bin/tool, npx", "/usr/bin/tool") and stdio_allowed("/usr/bin/tool, npx", "npx")
    assert not stdio_allowed("/usr/bin/tool", "/usr/bin/tool2")
    assert stdio_allowed("*", "anything")


def test_a_registration_hides_its_secrets() -> None:
    server = memory_pb2.McpServer(id="mcp-1", name="s", transport="http", url="https://x/mcp",
                                  headers={"Authorization": "Bearer s3cret"})
    shown = public_mcp_server(server)
    assert dict(shown.headers) == {"Authorization": "***"} and "s3cret" not in str(shown)


def test_registrations_are_checked() -> None:
    for bad, reason in [(memory_pb2.McpServer(name="s", transport="stdio"), "command"),
                        (memory_pb2.McpServer(name="s", transport="http", url="ftp://x"), "http"),
                        (memory_pb2.McpServer(name="s", transport="http", url="http://x", command="sh"), "stdio"),
                        (memory_pb2.McpServer(name="s", transport="tcp"), "transport"),
                        (memory_pb2.McpServer(name="s", transport="http", url="http://x",
                                              timeout_seconds=float("nan")), "timeout")]:
        with pytest.raises(InvalidArgument, match=reason):
            check_server(bad)
    check_server(memory_pb2.McpServer(name="s", transport="http", url="http://127.0.0.1:9/mcp"))


def test_the_client_answers_the_calls_the_last_pause_names() -> None:
    events = [Event(type="approval_requested", call_id="c1", name="add", arguments='{"a": 1}'),
              Event(type="tool_call_requested", call_id="c2", name="look", arguments={"k": "v"}),
              Event(type="turn_paused", call_ids=["c1", "c2"]),
              Event(type="tool_call_requested", call_id="c1", name="add", arguments='{"a": 1}'),  # approved
              Event(type="turn_paused", call_ids=["c1"])]
    (only,) = waiting_calls(events)
    assert (only.call_id, only.kind, only.arguments) == ("c1", "tool", {"a": 1})
    assert [c.kind for c in waiting_calls(events[:3])] == ["approval", "tool"]
    assert waiting_calls(events[:2]) == []
    assert tool_answer(only, 5, None) == {"call_id": "c1", "result": "5"}
    assert tool_answer(only, None, ValueError("x")) == {"call_id": "c1", "error": "ValueError: x"}
    assert approval_answer(only, (False, "no")) == {"call_id": "c1", "approve": False, "reason": "no"}
    assert approval_answer(only, True)["approve"] is True


def test_the_services_load_the_mcp_sdk_only_when_it_is_used() -> None:
    """The SDK costs ~27 MB a process; /mcp and MCP tools load it on first use, not at start."""
    import subprocess
    import sys

    code = ("import sys, mnemo.cli.combined, mnemo.gateway.server, mnemo.orchestrator.server, "
            "mnemo.memory.server, mnemo.llm_proxy.server; "
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
