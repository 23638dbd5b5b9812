"""REST: tools (docs/tools.md). A paused turn's pending calls and their resolution (a client-side
tool's result, approve / deny), the tenant's MCP servers, and attaching their tools to agents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, Tenant, require_admin
from mnemo.gateway.rest_agents import wait_result
from mnemo.gateway.schemas import ApprovalBody, AttachToolsBody, McpServerBody, ToolResultBody

agents = APIRouter(prefix="/v1/agents", tags=["tools"])
servers = APIRouter(prefix="/v1/mcp-servers", tags=["tools"])
admin = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
WAITS: dict[int | str, dict[str, Any]] = {202: {"description": "the turn is still running: follow /events"}}


@agents.get("/{agent_id}/pending-calls", summary="The calls the agent's paused turn waits on")
async def pending_calls(agent_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.pending(who.tenant_id, agent_id))


@agents.post("/{agent_id}/tool-results", summary="A client-side tool's result: the paused turn goes on",
             description="`{call_id, result}` (text or any JSON) or `{call_id, error}`; waits for the turn to "
                         "end or pause again, like POST /messages.", responses=WAITS)
async def tool_result(agent_id: str, body: ToolResultBody, who: Tenant, ctx: Ctx) -> JSONResponse:
    kind = "error" if body.error is not None else "result"
    return await wait_result(ctx, await ctx.tools.resolve(who.tenant_id, agent_id, body.call_id, kind, body.text()))


@agents.post("/{agent_id}/approvals", summary="Approve or deny a call that needs approval",
             description="A denial's reason goes back to the agent; waits for the turn like POST /messages.",
             responses=WAITS)
async def approval(agent_id: str, body: ApprovalBody, who: Tenant, ctx: Ctx) -> JSONResponse:
    kind = "approve" if body.approve else "deny"
    return await wait_result(ctx, await ctx.tools.resolve(who.tenant_id, agent_id, body.call_id, kind, body.reason))


@agents.post("/{agent_id}/mcp-tools", summary="Attach tools of a registered MCP server to the agent")
async def attach_mcp_tools(agent_id: str, body: AttachToolsBody, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.attach(who.tenant_id, agent_id, body.server_id, body.tools))


@agents.delete("/{agent_id}/tools/{name}", summary="Remove a tool (client-side or MCP) from the agent")
async def detach_tool(agent_id: str, name: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.detach(who.tenant_id, agent_id, name))


@servers.post("", status_code=201, summary="Register an MCP server (http; stdio if allowed)")
async def register_server(body: McpServerBody, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.register(who.tenant_id, body.to_proto()))


@servers.get("", summary="The tenant's MCP servers (header and env values hidden)")
async def list_servers(who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.servers(who.tenant_id))


@servers.delete("/{server_id}", status_code=204, summary="Unregister an MCP server")
async def delete_server(server_id: str, who: Tenant, ctx: Ctx) -> Response:
    await ctx.tools.delete_server(who.tenant_id, server_id)
    return Response(status_code=204)


@servers.get("/{server_id}/tools", summary="The tools the MCP server offers (listed live)")
async def server_tools(server_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return {"tools": [to_json(t) for t in await ctx.tools.server_tools(who.tenant_id, server_id)]}


@admin.post("/tenants/{tenant_id}/mcp-servers", status_code=201,
            summary="Register an MCP server for a tenant (admin: stdio commands allowed)")
async def admin_register_server(tenant_id: str, body: McpServerBody, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.tools.register(tenant_id, body.to_proto(), admin=True))
