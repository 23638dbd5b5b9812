"""What the gateway does with tools, independent of transport (REST rest_tools.py, gRPC grpc_tools.py):
the calls a paused turn waits on and their resolution, the tenant's MCP servers and attaching their
tools to agents. Failures are ApiError; every operation is scoped by the caller's tenant."""

from __future__ import annotations

import shlex
from typing import Any

from mnemo.common import tool_specs
from mnemo.common.errors import InvalidArgument, MnemoError
from mnemo.gateway.convert import public_agent, public_mcp_server
from mnemo.gateway.core import Core
from mnemo.gateway.errors import ApiError
from mnemo.gateway.turns import SubmittedTurn, TurnSubmitter
from mnemo.v1 import agent_pb2, common_pb2, memory_pb2

TOOL_LISTING_TIMEOUT = 60.0
ORCHESTRATORS = "the orchestrators"
WAITS_FOR = {"client": ("result", "error"), "approval": ("approve", "deny")}


def stdio_allowed(allow: str, command: str) -> bool:
    """Whether MNEMO_MCP_STDIO_ALLOW (comma-separated commands, or *) lets a tenant register `command`."""
    allowed = {c.strip() for c in allow.split(",") if c.strip()}
    return "*" in allowed or command.strip() in allowed


class ToolOps:
    """Tenant-scoped tool operations over the memory service and the orchestrators' ToolService."""

    def __init__(self, core: Core, turns: TurnSubmitter, tool_service: Any, stdio_allow: str = "") -> None:
        self.core = core
        self.turns = turns
        self.tool_service = tool_service
        self.stdio_allow = stdio_allow

    # ---- a paused turn's calls ----
    async def pending(self, tenant_id: str, agent_id: str) -> agent_pb2.PendingCalls:
        state = await self.core.get_state(tenant_id, agent_id)
        if state.turn.completed or not state.turn.pending_calls:
            return agent_pb2.PendingCalls()
        return agent_pb2.PendingCalls(turn_id=state.turn.turn_id, calls=state.turn.pending_calls)

    async def resolve(self, tenant_id: str, agent_id: str, call_id: str, kind: str, text: str) -> SubmittedTurn:
        """Resume the paused turn with the resolution of one of its pending calls (404: no such call)."""
        state = await self.core.get_state(tenant_id, agent_id)
        call = next((c for c in state.turn.pending_calls if c.call_id == call_id), None)
        if call is None or state.turn.completed:
            raise ApiError(404, f"no pending call {call_id!r}: the agent's turn waits on "
                                f"{', '.join(c.call_id for c in state.turn.pending_calls) or 'nothing'}")
        if kind not in WAITS_FOR.get(call.kind, ()):
            wanted = "a result (POST .../tool-results)" if call.kind == "client" else \
                "an approval or a denial (POST .../approvals)"
            raise ApiError(409, f"call {call_id} waits for {wanted}")
        return await self.turns.resume(tenant_id, agent_id, state.turn.turn_id,
                                       common_pb2.CallResolution(call_id=call_id, kind=kind, text=text))

    # ---- MCP servers ----
    async def register(self, tenant_id: str, server: memory_pb2.McpServer, admin: bool = False,
                       ) -> agent_pb2.PublicMcpServer:
        """Register a server of the tenant. A stdio command runs on the orchestrators' machines: only
        the admin may register one, or a tenant when MNEMO_MCP_STDIO_ALLOW lists the command."""
        if server.transport == "stdio" and not admin and not stdio_allowed(self.stdio_allow, server.command):
            raise ApiError(403, "stdio MCP servers run commands on the server: only the admin key may register "
                                f"{shlex.quote(server.command[:200])} (or MNEMO_MCP_STDIO_ALLOW must list it); "
                                "tenants may register http servers")
        server.tenant_id, server.id = tenant_id, ""
        return public_mcp_server(await self.core.call(self.core.memory.PutMcpServer, server))

    async def servers(self, tenant_id: str) -> agent_pb2.ListPublicMcpServers:
        resp = await self.core.call(self.core.memory.ListMcpServers,
                                    memory_pb2.ListMcpServersRequest(tenant_id=tenant_id))
        return agent_pb2.ListPublicMcpServers(servers=[public_mcp_server(s) for s in resp.servers])

    async def delete_server(self, tenant_id: str, server_id: str) -> None:
        await self.core.call(self.core.memory.DeleteMcpServer, self._server_ref(tenant_id, server_id))

    async def server_tools(self, tenant_id: str, server_id: str) -> list[common_pb2.ToolSpec]:
        """The server's tools, listed live by an orchestrator (503 with the reason if it cannot be reached)."""
        ref = self._server_ref(tenant_id, server_id)
        await self.core.call(self.core.memory.GetMcpServer, ref)  # 404 before asking anyone
        try:
            resp = await self.tool_service.ListMcpTools(ref, timeout=TOOL_LISTING_TIMEOUT)
        except MnemoError as exc:
            raise ApiError.from_error(exc, ORCHESTRATORS) from exc
        return list(resp.tools)

    async def attach(self, tenant_id: str, agent_id: str, server_id: str, names: list[str]) -> agent_pb2.Agent:
        """Attach the server's tools (all, or those named) to the agent, their schemas as listed now."""
        ref = await self.core.owned(tenant_id, agent_id)
        offered = {t.name: t for t in await self.server_tools(tenant_id, server_id)}
        missing = [n for n in names if n not in offered]
        if missing:
            raise ApiError(404, f"the MCP server has no tool {missing[0]!r}; it offers "
                                f"{', '.join(sorted(offered)) or 'none'}")
        chosen = [offered[n] for n in names] if names else list(offered.values())
        try:
            tool_specs.check_tools(chosen)
        except InvalidArgument as exc:
            raise ApiError(409, f"cannot attach: {exc}") from None
        state = await self.core.call(self.core.memory.EditAgentTools, memory_pb2.EditAgentToolsRequest(
            ref=ref, put=chosen))
        return public_agent(state)

    async def detach(self, tenant_id: str, agent_id: str, name: str) -> agent_pb2.Agent:
        ref = await self.core.owned(tenant_id, agent_id)
        if not tool_specs.NAME.match(name):
            raise ApiError(404, f"the agent has no tool {name[:100]!r}")
        state = await self.core.call(self.core.memory.EditAgentTools, memory_pb2.EditAgentToolsRequest(
            ref=ref, remove=[name]))
        return public_agent(state)

    @staticmethod
    def _server_ref(tenant_id: str, server_id: str) -> memory_pb2.McpServerRef:
        if not server_id or len(server_id) > 200:
            raise ApiError(404, f"MCP server {server_id[:100]!r} not found")
        return memory_pb2.McpServerRef(tenant_id=tenant_id, server_id=server_id)
