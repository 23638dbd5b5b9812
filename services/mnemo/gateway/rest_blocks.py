"""REST: shared blocks of the tenant (/v1/blocks), attaching them to agents, consolidation requests."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, Tenant
from mnemo.gateway.schemas import SharedBlockCreate, SharedBlockUpdate
from mnemo.v1 import memory_pb2

router = APIRouter(prefix="/v1/blocks", tags=["shared blocks"])
INTERNAL = ("tenant_id", "recent_edits", "revision")


def block_json(rec: memory_pb2.SharedBlock) -> dict[str, Any]:
    """{id, label, value, limit, created_at, updated_at, agents}."""
    out = to_json(rec)
    for key in INTERNAL:
        out.pop(key, None)
    return out
agents = APIRouter(prefix="/v1/agents", tags=["shared blocks"])


@router.post("", status_code=201, summary="Create a shared block",
             description="A core-memory block of the tenant that several agents can attach: an edit through "
                         "any of them (or here) is seen by all of them from their next step.")
async def create_block(body: SharedBlockCreate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return block_json(await ctx.ops.create_block(who.tenant_id, body.label, body.value, body.limit))


@router.get("", summary="List the tenant's shared blocks")
async def list_blocks(who: Tenant, ctx: Ctx, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                      page_size: Annotated[int, Query(ge=1, le=100)] = 50) -> dict[str, Any]:
    resp = await ctx.ops.list_blocks(who.tenant_id, page, page_size)
    return {"blocks": [block_json(b) for b in resp.blocks], "total": resp.total, "page": resp.page,
            "page_size": resp.page_size}


@router.get("/{block_id}", summary="A shared block")
async def get_block(block_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return block_json(await ctx.ops.get_block(who.tenant_id, block_id))


@router.patch("/{block_id}", summary="Change a shared block's value or limit")
async def update_block(block_id: str, body: SharedBlockUpdate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return block_json(await ctx.ops.update_block(who.tenant_id, block_id, body.value, body.limit))


@router.delete("/{block_id}", status_code=204, summary="Delete a shared block (detached from every agent first)")
async def delete_block(block_id: str, who: Tenant, ctx: Ctx) -> Response:
    await ctx.ops.delete_block(who.tenant_id, block_id)
    return Response(status_code=204)


@router.get("/{block_id}/agents", summary="The agents a shared block is attached to")
async def block_agents(block_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.ops.block_agents(who.tenant_id, block_id))


@agents.post("/{agent_id}/blocks/{block_id}", summary="Attach a shared block to the agent",
             description="A block of the same label is replaced; the agent's own one is kept in a checkpoint "
                         "taken first (`checkpoint_id`).")
async def attach_block(agent_id: str, block_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    resp = await ctx.ops.attach(who.tenant_id, agent_id, block_id)
    return {"block": block_json(resp.block), "replaced": resp.replaced, "checkpoint_id": resp.checkpoint_id}


@agents.delete("/{agent_id}/blocks/{block_id}", status_code=204, summary="Detach a shared block from the agent")
async def detach_block(agent_id: str, block_id: str, who: Tenant, ctx: Ctx) -> Response:
    await ctx.ops.detach(who.tenant_id, agent_id, block_id)
    return Response(status_code=204)


@agents.post("/{agent_id}/consolidate", status_code=202, summary="Consolidate the agent's memory now",
             description="Queues a background consolidation (between turns); its memory_consolidated event "
                         "shows in the agent's events. The agent must have consolidation enabled.")
async def consolidate(agent_id: str, who: Tenant, ctx: Ctx) -> JSONResponse:
    await ctx.ops.consolidate(who.tenant_id, agent_id)
    return JSONResponse({"queued": True}, status_code=202)
