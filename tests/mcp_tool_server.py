"""A small MCP tool server for tests, written with the official SDK.

    python -m tests.mcp_tool_server              # stdio
    python -m tests.mcp_tool_server http PORT    # streamable HTTP on 127.0.0.1:PORT/mcp

Tools: `add`, `echo`, `long_text` (a result of n characters), `fail` (a tool error), `sleep`,
`die` (the process exits in the middle of the call), `whoami` (the Authorization header it got, HTTP).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("mnemo-test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Say the text back, with this process's id."""
    return f"echo: {text} (pid {os.getpid()})"


@server.tool()
def long_text(n: int) -> str:
    """A text of n characters."""
    return "L" * n


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ToolError(message)


@server.tool()
async def sleep(seconds: float) -> str:
    """Wait, then answer."""
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def die() -> str:
    """The server process exits without answering."""
    sys.stdout.flush()
    os._exit(3)


@server.tool()
def whoami(ctx: Context) -> str:
    """The Authorization header of the HTTP request (empty over stdio)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return headers.get("authorization", "") if headers is not None else ""


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True,
                   json_response=True)
    else:
        server.run()
