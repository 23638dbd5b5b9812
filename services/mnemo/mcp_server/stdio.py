"""`mnemo mcp`: Mnemo's MCP server over stdio, for MCP clients that start it as a command. It talks to
the gateway at MNEMO_BASE_URL (default the local `mnemo up`) with MNEMO_API_KEY (default the key in
$MNEMO_HOME/api_key). Nothing but MCP messages goes to stdout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context

from mnemo.client import AsyncMnemo
from mnemo.mcp_server.tools import build_server


async def serve_stdio(base_url: str | None = None, api_key: str | None = None) -> None:
    """Serve until the client closes stdin."""
    async with AsyncMnemo(base_url, api_key) as api:
        @asynccontextmanager
        async def clients(_: Context) -> AsyncIterator[AsyncMnemo]:
            yield api

        await build_server(clients).run_stdio_async()
