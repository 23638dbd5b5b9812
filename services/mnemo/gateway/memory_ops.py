"""Tenant-scoped shared blocks, archival bulk deletes and consolidation requests, independent of
transport (REST in rest_blocks.py, gRPC in grpc_api.py). Failures are ApiError.

Shared blocks live in the memory service under `<tenant>.<block>`: the tenant comes from the key, so
another tenant's block id is simply not found. Attach and detach also check that the key's tenant
owns the agent.
"""

from __future__ import annotations

from mnemo.common import ids, subjects, telemetry
from mnemo.common.ids import is_token
from mnemo.gateway.core import Core
from mnemo.gateway.errors import ApiError
from mnemo.v1 import common_pb2, memory_pb2


def check_block_id(block_id: str) -> None:
    """An id that cannot exist is simply not found."""
    if not is_token(block_id):
        raise ApiError(404, f"block {block_id!r} not found")


def public_block(rec: memory_pb2.SharedBlock) -> memory_pb2.SharedBlock:
    """The block as users see it (no tenant, no internal edit ids)."""
    out = memory_pb2.SharedBlock()
    out.CopyFrom(rec)
    out.tenant_id = ""
    out.revision = 0
    del out.recent_edits[:]
    return out


def _ref(tenant_id: str, block_id: str) -> memory_pb2.SharedBlockRef:
    check_block_id(block_id)
    return memory_pb2.SharedBlockRef(tenant_id=tenant_id, block_id=block_id)


class MemoryOps:
    """Shared blocks, bulk deletes and consolidation requests of one gateway (over `Core`'s memory client)."""

    def __init__(self, core: Core, js: object) -> None:
        self.core = core
        self.js = js

    async def create_block(self, tenant_id: str, label: str, value: str, limit: int) -> memory_pb2.SharedBlock:
        req = memory_pb2.CreateSharedBlockRequest(tenant_id=tenant_id, label=label, value=value, limit=limit)
        return public_block(await self.core.call(self.core.memory.CreateSharedBlock, req))

    async def list_blocks(self, tenant_id: str, page: int, page_size: int) -> memory_pb2.ListSharedBlocksResponse:
        resp = await self.core.call(self.core.memory.ListSharedBlocks, memory_pb2.ListSharedBlocksRequest(
            tenant_id=tenant_id, page=page, page_size=page_size))
        out = memory_pb2.ListSharedBlocksResponse(total=resp.total, page=resp.page, page_size=resp.page_size)
        out.blocks.extend(public_block(b) for b in resp.blocks)
        return out

    async def get_block(self, tenant_id: str, block_id: str) -> memory_pb2.SharedBlock:
        return public_block(await self.core.call(self.core.memory.GetSharedBlock, _ref(tenant_id, block_id)))

    async def update_block(self, tenant_id: str, block_id: str, value: str | None,
                           limit: int) -> memory_pb2.SharedBlock:
        req = memory_pb2.UpdateSharedBlockRequest(ref=_ref(tenant_id, block_id), op="set", limit=limit)
        if value is not None:
            req.value = value
        return public_block(await self.core.call(self.core.memory.UpdateSharedBlock, req))

    async def delete_block(self, tenant_id: str, block_id: str) -> None:
        await self.core.call(self.core.memory.DeleteSharedBlock, _ref(tenant_id, block_id))

    async def block_agents(self, tenant_id: str, block_id: str) -> memory_pb2.ListSharedBlockAgentsResponse:
        return await self.core.call(self.core.memory.ListSharedBlockAgents, _ref(tenant_id, block_id))

    async def attach(self, tenant_id: str, agent_id: str, block_id: str) -> memory_pb2.AttachSharedBlockResponse:
        check_block_id(block_id)
        resp = await self.core.call(self.core.memory.AttachSharedBlock, memory_pb2.AttachSharedBlockRequest(
            ref=await self.core.owned(tenant_id, agent_id), block_id=block_id))
        resp.block.CopyFrom(public_block(resp.block))
        return resp

    async def detach(self, tenant_id: str, agent_id: str, block_id: str) -> None:
        check_block_id(block_id)
        await self.core.call(self.core.memory.DetachSharedBlock, memory_pb2.AttachSharedBlockRequest(
            ref=await self.core.owned(tenant_id, agent_id), block_id=block_id))

    async def bulk_delete_archival(self, tenant_id: str, agent_id: str, *, tags: list[str], start: str, end: str,
                                   source_id: str, passage_ids: list[str]) -> memory_pb2.BulkDeleteArchivalResponse:
        if not (tags or start or end or source_id or passage_ids):
            raise ApiError(400, "give at least one filter (tags, start, end, source_id, ids): "
                                "a bulk delete never takes everything")
        return await self.core.call(self.core.memory.BulkDeleteArchival, memory_pb2.BulkDeleteArchivalRequest(
            ref=await self.core.owned(tenant_id, agent_id), tags=tags, start=start, end=end, source_id=source_id,
            ids=passage_ids))

    async def consolidate(self, tenant_id: str, agent_id: str) -> None:
        """Queue a consolidation of the agent now (409 unless it has consolidation enabled)."""
        state = await self.core.get_state(tenant_id, agent_id)
        if not state.config.consolidation.enabled:
            raise ApiError(409, "consolidation is not enabled for this agent: set consolidation.enabled "
                                "(PATCH /v1/agents/{id})")
        req = common_pb2.ConsolidationRequest(tenant_id=tenant_id, agent_id=agent_id, reason="requested",
                                              created_at=ids.now_iso(), runs=state.consolidation.runs)
        await self.js.publish(  # type: ignore[attr-defined]
            subjects.consolidation_subject(tenant_id, agent_id), req.SerializeToString(),
            headers={**telemetry.inject(),
                     "Nats-Msg-Id": f"{tenant_id}.{agent_id}.{state.consolidation.runs}.requested"})
