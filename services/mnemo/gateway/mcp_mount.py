"""`/mcp` mounted without loading the MCP SDK: the endpoint (`mcp_http.McpEndpoint`, about 27 MB of
SDK per process) is built on the first authenticated request. Most stacks never get one."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from mnemo.gateway.deps import GatewayContext, authenticate
from mnemo.gateway.errors import ApiError

if TYPE_CHECKING:
    from mnemo.gateway.mcp_http import McpEndpoint

PATH = "/mcp"


class McpMount:
    """The ASGI endpoint of `/mcp`: authenticates, starts the MCP endpoint once, hands it the request."""

    def __init__(self, ctx: GatewayContext, app: ASGIApp) -> None:
        self.ctx = ctx
        self.app = app   # the gateway's REST app, which the MCP tools call
        self.endpoint: McpEndpoint | None = None
        self._lock = asyncio.Lock()
        self._stopped = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            await authenticate(self.ctx, headers.get("authorization"))
        except ApiError as exc:
            await _answer(send, exc.status, {"detail": exc.detail}, exc.headers)
            return
        endpoint = self.endpoint or await self._start()
        if endpoint is None:
            await _answer(send, 503, {"detail": "the MCP endpoint is not running"}, {})
            return
        await endpoint.http(scope, receive, send)

    async def _start(self) -> McpEndpoint | None:
        async with self._lock:
            if self.endpoint is None and not self._stopped:
                from mnemo.gateway.mcp_http import McpEndpoint

                endpoint = McpEndpoint(self.app)
                await endpoint.start()
                self.endpoint = endpoint
        return self.endpoint

    async def stop(self) -> None:
        async with self._lock:
            self._stopped = True
            if self.endpoint is not None:
                await self.endpoint.stop()
                self.endpoint = None


async def _answer(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
