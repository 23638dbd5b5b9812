"""`/mcp`: Mnemo's MCP server (mnemo.mcp_server) over streamable HTTP at the gateway.

Every request needs the tenant's API key (`Authorization: Bearer <key>`, as on /v1); the tools then
call the REST API of this same gateway in-process with that key, so a tenant reaches through MCP
exactly what it reaches through REST (same checks, same isolation, same rate limit). Stateless:
each request stands alone, so any gateway replica serves any request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from mnemo.client import AsyncMnemo
from mnemo.gateway.mcp_mount import PATH as MCP_PATH
from mnemo.mcp_server.tools import build_server

LOOPBACK = "http://gateway.internal"   # the base URL of in-process calls (never resolved)


class McpEndpoint:
    """Mnemo's MCP server and the SDK's transport (`http`), which `mcp_mount.McpMount` hands
    authenticated requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app   # the gateway's REST app, which the tools call
        self.server = build_server(self._client)
        # DNS-rebinding checks guard servers without credentials; every request here carries a key.
        self.http = self.server.streamable_http_app(
            streamable_http_path=MCP_PATH, json_response=True, stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()

        async def run() -> None:
            async with self.server.session_manager.run():
                ready.set()
                await self._stop.wait()
        self._task = asyncio.create_task(run(), name="mcp-http")
        await ready.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @asynccontextmanager
    async def _client(self, ctx: Context) -> AsyncIterator[AsyncMnemo]:
        """A client of this gateway's REST API with the key of the MCP request being served."""
        request: Any = ctx.request_context.request
        authorization = request.headers.get("authorization", "") if request is not None else ""
        key = authorization.partition(" ")[2].strip()
        async with AsyncMnemo(LOOPBACK, api_key=key, transport=httpx.ASGITransport(app=self.app)) as api:
            yield api
