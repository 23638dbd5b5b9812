"""ToolService (tools.proto): what the gateway asks the orchestrators about MCP servers, over NATS
RPC and gRPC. The orchestrators run the MCP clients (a stdio server is their child process)."""

from __future__ import annotations

from typing import Any

import grpc

from mnemo.common import status
from mnemo.common.errors import MnemoError
from mnemo.orchestrator.mcp_client import McpTools, McpUnavailable
from mnemo.v1 import tools_pb2, tools_pb2_grpc


class ToolServicer(tools_pb2_grpc.ToolServiceServicer):
    def __init__(self, mcp: McpTools) -> None:
        self.mcp = mcp

    async def ListMcpTools(self, request: Any, context: Any) -> tools_pb2.ListMcpToolsResponse:
        try:
            tools = await self.mcp.list_tools(request.tenant_id, request.server_id)
        except MnemoError as err:
            await status.abort(context, err)
        except McpUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, status.clip_details(str(exc)))
        return tools_pb2.ListMcpToolsResponse(tools=tools)
