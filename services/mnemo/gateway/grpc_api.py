"""The public gRPC API (mnemo.v1.AgentService): the REST operations, same auth, same errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from mnemo.common import telemetry
from mnemo.common.agent_fields import UPDATABLE
from mnemo.gateway.console_reads import console_reads
from mnemo.gateway.deps import GatewayContext
from mnemo.gateway.errors import ApiError
from mnemo.gateway.events import events_of_turn, replay
from mnemo.gateway.grpc_edge import (
    FAILURES,
    RequestStream,
    abort_stream,
    malformed_error,
    principal,
    register,
    streaming,
    unary,
)
from mnemo.gateway.submit import submit_turn
from mnemo.gateway.turns import SubmittedTurn
from mnemo.v1 import agent_pb2, agent_pb2_grpc, console_pb2, memory_pb2


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.core = ctx.core

    # ---- agents ----
    @unary
    async def CreateAgent(self, tenant: str, request: memory_pb2.CreateAgentRequest, context: Any) -> Any:
        return await self.core.create_agent(tenant, request)

    @unary
    async def GetAgent(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        return await self.core.get_agent(tenant, request.agent_id)

    @unary
    async def ListAgents(self, tenant: str, request: memory_pb2.ListAgentsRequest, context: Any) -> Any:
        page = request.page if request.page > 0 else 1
        size = min(request.page_size, 100) if request.page_size > 0 else 50
        resp = await self.core.list_agents(tenant, page, size)
        for cfg in resp.agents:
            cfg.tenant_id = ""  # internal detail
        return resp

    @unary
    async def UpdateAgent(self, tenant: str, request: memory_pb2.UpdateAgentRequest, context: Any) -> Any:
        bad = [m for m in request.update_mask if m not in UPDATABLE]
        if bad:
            raise ApiError(400, f"update_mask may name only {sorted(UPDATABLE)}; got {bad}")
        config = memory_pb2.UpdateAgentRequest().config
        config.CopyFrom(request.config)
        return await self.core.update_agent(tenant, request.ref.agent_id, config, list(request.update_mask))

    @unary
    async def DeleteAgent(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        await self.core.delete_agent(tenant, request.agent_id)
        return empty_pb2.Empty()

    # ---- turns and events ----
    @streaming
    async def SendMessage(self, tenant: str, request: agent_pb2.SendMessageRequest,
                          context: Any) -> AsyncIterator[Any]:
        tools = list(request.tools)
        for tool in tools:
            tool.kind = tool.kind or "client"
        turn = await submit_turn(self.ctx, tenant, request.agent_id, request.message, role=request.role or "user",
                                 max_steps=request.max_steps, idempotency_key=request.idempotency_key or None,
                                 tools=tools)
        async for event in self._follow(tenant, request.agent_id, turn, context):
            yield event

    async def _follow(self, tenant: str, agent_id: str, turn: SubmittedTurn, context: Any) -> AsyncIterator[Any]:
        """The turn's events until it ends or pauses."""
        context.set_trailing_metadata((("mnemo-turn-id", turn.turn_id),))
        try:
            with telemetry.turn_scope(tenant, agent_id, turn.turn_id):
                async for event in self.ctx.turns.events(turn, None):
                    yield event
        finally:
            self.ctx.turns.close(turn)

    @streaming
    async def StreamEvents(self, tenant: str, request: agent_pb2.StreamEventsRequest,
                           context: Any) -> AsyncIterator[Any]:
        await self.core.get_state(tenant, request.agent_id)
        events = events_of_turn(replay(self.ctx.js, tenant, request.agent_id, after=request.after_seq,
                                       follow=request.follow,
                                       idle_timeout=self.ctx.options.sse_keepalive if request.follow else 5.0),
                                request.turn_id)
        try:
            async for event in events:
                if event is not None:
                    yield event
        finally:
            await events.aclose()

    # ---- memory ----
    @unary
    async def GetMemory(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        return await self.core.core_memory(tenant, request.agent_id)

    @unary
    async def UpdateMemoryBlock(self, tenant: str, request: agent_pb2.UpdateMemoryBlockRequest,
                                context: Any) -> Any:
        if not request.label:
            raise ApiError(400, "label: required")
        return await self.core.set_block(tenant, request.agent_id, request.label, request.value, request.limit)

    @unary
    async def SearchRecall(self, tenant: str, request: agent_pb2.PublicSearchRecallRequest, context: Any) -> Any:
        return await self.core.search_recall(tenant, request.agent_id, query=request.query, start=request.start,
                                             end=request.end, role=request.role, page=max(request.page, 1),
                                             page_size=_size(request.page_size))

    @unary
    async def ImportRecall(self, tenant: str, request: agent_pb2.PublicImportRecallRequest, context: Any) -> Any:
        return await self.core.import_recall(tenant, request.agent_id, list(request.messages))

    @unary
    async def SearchArchival(self, tenant: str, request: agent_pb2.PublicSearchArchivalRequest,
                             context: Any) -> Any:
        return await self.core.search_archival(tenant, request.agent_id, query=request.query,
                                               tags=list(request.tags), page=max(request.page, 1),
                                               page_size=_size(request.page_size))

    @unary
    async def InsertArchival(self, tenant: str, request: agent_pb2.PublicInsertArchivalRequest,
                             context: Any) -> Any:
        if not request.passages:
            raise ApiError(400, "passages: at least one")
        return await self.core.insert_archival(tenant, request.agent_id, list(request.passages), request.dedup)

    @unary
    async def DeleteArchival(self, tenant: str, request: agent_pb2.PublicDeleteArchivalRequest,
                             context: Any) -> Any:
        await self.core.delete_archival(tenant, request.agent_id, request.passage_id)
        return empty_pb2.Empty()

    async def UploadDocument(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        limit = self.ctx.options.max_document_bytes
        requests = RequestStream(request_iterator, limit)
        who = await principal(self.ctx, context, requests)
        try:
            first = await anext(requests, None)
            if first is None or not first.HasField("header"):
                raise ApiError(400, "the first message must carry the header")
            header = first.header

            async def data() -> AsyncIterator[bytes]:
                total = 0
                async for chunk in requests:
                    total += len(chunk.data)
                    if total > limit:
                        raise ApiError(413, f"document larger than {limit} bytes")
                    yield chunk.data

            async for progress in self.core.ingest_document_progress(
                    who.tenant_id, header.agent_id, header.filename or "document.txt", header.content_type,
                    list(header.tags), data()):
                yield progress
        except FAILURES as exc:
            await abort_stream(context, exc, requests)
        except DecodeError as exc:  # a chunk that does not parse
            await abort_stream(context, malformed_error(exc), requests)

    # ---- checkpoints, export / import ----
    @unary
    async def CreateCheckpoint(self, tenant: str, request: agent_pb2.PublicCreateCheckpointRequest,
                               context: Any) -> Any:
        return await self.core.create_checkpoint(tenant, request.agent_id, request.name)

    @unary
    async def ListCheckpoints(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        return await self.core.list_checkpoints(tenant, request.agent_id)

    @unary
    async def RestoreCheckpoint(self, tenant: str, request: agent_pb2.PublicRestoreCheckpointRequest,
                                context: Any) -> Any:
        return await self.core.restore_checkpoint(tenant, request.agent_id, request.checkpoint_id)

    @streaming
    async def ExportAgent(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> AsyncIterator[Any]:
        async for piece in await self.core.export_agent(tenant, request.agent_id):
            yield memory_pb2.DataChunk(data=piece)

    async def ImportAgent(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        requests = RequestStream(request_iterator, self.ctx.options.max_document_bytes)
        who = await principal(self.ctx, context, requests)

        async def data() -> AsyncIterator[bytes]:
            async for chunk in requests:
                yield chunk.data
        try:
            return await self.core.import_agent(who.tenant_id, data())
        except FAILURES as exc:
            await abort_stream(context, exc, requests)
        except DecodeError as exc:  # a chunk that does not parse
            await abort_stream(context, malformed_error(exc), requests)

    # ---- templates ----
    @unary
    async def ListTemplates(self, tenant: str, request: agent_pb2.PublicListTemplatesRequest, context: Any) -> Any:
        return await self.core.list_templates(tenant, request.kind)

    @unary
    async def GetTemplate(self, tenant: str, request: agent_pb2.PublicTemplateRef, context: Any) -> Any:
        return await self.core.get_template(tenant, request.kind, request.name)

    @unary
    async def PutTemplate(self, tenant: str, request: agent_pb2.PublicPutTemplateRequest, context: Any) -> Any:
        t = request.template
        return await self.core.put_template(tenant, t.kind, t.name, t.text, request.create_only)

    # ---- queue editing ----
    @unary
    async def PopMessages(self, tenant: str, request: agent_pb2.PublicPopMessagesRequest, context: Any) -> Any:
        if not 1 <= request.count <= 1000:
            raise ApiError(400, "count: between 1 and 1000")
        return await self.core.pop_messages(tenant, request.agent_id, request.count)

    @unary
    async def RewriteMessage(self, tenant: str, request: agent_pb2.PublicRewriteMessageRequest,
                             context: Any) -> Any:
        if not request.text:
            raise ApiError(400, "text: required")
        return await self.core.rewrite_message(tenant, request.agent_id, request.text, request.message_id)

    # ---- models ----
    @unary
    async def ListModels(self, tenant: str, request: empty_pb2.Empty, context: Any) -> Any:
        if self.ctx.models is None:
            raise ApiError(503, "no llm-proxy is configured")
        return await self.ctx.models.list()

    @unary
    async def DeleteTemplate(self, tenant: str, request: agent_pb2.PublicTemplateRef, context: Any) -> Any:
        await self.core.delete_template(tenant, request.kind, request.name)
        return empty_pb2.Empty()

    # ---- tools (mnemo.gateway.tools) ----
    @streaming
    async def SubmitToolResult(self, tenant: str, request: agent_pb2.ToolResultRequest,
                               context: Any) -> AsyncIterator[Any]:
        failed = request.is_error or bool(request.error)
        turn = await self.ctx.tools.resolve(tenant, request.agent_id, request.call_id,
                                            "error" if failed else "result",
                                            request.error if failed else request.result)
        async for event in self._follow(tenant, request.agent_id, turn, context):
            yield event

    @streaming
    async def SubmitApproval(self, tenant: str, request: agent_pb2.ApprovalRequest,
                             context: Any) -> AsyncIterator[Any]:
        turn = await self.ctx.tools.resolve(tenant, request.agent_id, request.call_id,
                                            "approve" if request.approve else "deny", request.reason)
        async for event in self._follow(tenant, request.agent_id, turn, context):
            yield event

    @unary
    async def ListPendingCalls(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        return await self.ctx.tools.pending(tenant, request.agent_id)

    @unary
    async def RegisterMcpServer(self, tenant: str, request: agent_pb2.PublicMcpServer, context: Any) -> Any:
        server = memory_pb2.McpServer(
            name=request.name, transport=request.transport, command=request.command, args=request.args,
            env=request.env, url=request.url, headers=request.headers, timeout_seconds=request.timeout_seconds,
            max_result_chars=request.max_result_chars)
        return await self.ctx.tools.register(tenant, server)

    @unary
    async def ListMcpServers(self, tenant: str, request: empty_pb2.Empty, context: Any) -> Any:
        return await self.ctx.tools.servers(tenant)

    @unary
    async def DeleteMcpServer(self, tenant: str, request: agent_pb2.McpServerRequest, context: Any) -> Any:
        await self.ctx.tools.delete_server(tenant, request.server_id)
        return empty_pb2.Empty()

    @unary
    async def ListMcpServerTools(self, tenant: str, request: agent_pb2.McpServerRequest, context: Any) -> Any:
        return agent_pb2.McpServerTools(tools=await self.ctx.tools.server_tools(tenant, request.server_id))

    @unary
    async def AttachMcpTools(self, tenant: str, request: agent_pb2.AttachMcpToolsRequest, context: Any) -> Any:
        return await self.ctx.tools.attach(tenant, request.agent_id, request.server_id, list(request.tools))

    @unary
    async def DetachTool(self, tenant: str, request: agent_pb2.DetachToolRequest, context: Any) -> Any:
        return await self.ctx.tools.detach(tenant, request.agent_id, request.name)

    # ---- shared blocks, archival bulk delete, consolidation (gateway/memory_ops.py) ----
    @unary
    async def CreateBlock(self, tenant: str, request: agent_pb2.PublicCreateBlockRequest, context: Any) -> Any:
        return await self.ctx.ops.create_block(tenant, request.label, request.value, request.limit)

    @unary
    async def ListBlocks(self, tenant: str, request: agent_pb2.PublicListBlocksRequest, context: Any) -> Any:
        size = min(request.page_size, 100) if request.page_size > 0 else 50
        return await self.ctx.ops.list_blocks(tenant, max(request.page, 1), size)

    @unary
    async def GetBlock(self, tenant: str, request: agent_pb2.PublicBlockRef, context: Any) -> Any:
        return await self.ctx.ops.get_block(tenant, request.block_id)

    @unary
    async def UpdateBlock(self, tenant: str, request: agent_pb2.PublicUpdateBlockRequest, context: Any) -> Any:
        value = request.value if request.HasField("value") else None
        return await self.ctx.ops.update_block(tenant, request.block_id, value, request.limit)

    @unary
    async def DeleteBlock(self, tenant: str, request: agent_pb2.PublicBlockRef, context: Any) -> Any:
        await self.ctx.ops.delete_block(tenant, request.block_id)
        return empty_pb2.Empty()

    @unary
    async def ListBlockAgents(self, tenant: str, request: agent_pb2.PublicBlockRef, context: Any) -> Any:
        return await self.ctx.ops.block_agents(tenant, request.block_id)

    @unary
    async def AttachBlock(self, tenant: str, request: agent_pb2.PublicAttachBlockRequest, context: Any) -> Any:
        return await self.ctx.ops.attach(tenant, request.agent_id, request.block_id)

    @unary
    async def DetachBlock(self, tenant: str, request: agent_pb2.PublicAttachBlockRequest, context: Any) -> Any:
        await self.ctx.ops.detach(tenant, request.agent_id, request.block_id)
        return empty_pb2.Empty()

    @unary
    async def BulkDeleteArchival(self, tenant: str, request: agent_pb2.PublicBulkDeleteArchivalRequest,
                                 context: Any) -> Any:
        return await self.ctx.ops.bulk_delete_archival(tenant, request.agent_id, tags=list(request.tags),
                                                       start=request.start, end=request.end,
                                                       source_id=request.source_id, passage_ids=list(request.ids))

    @unary
    async def ConsolidateAgent(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        await self.ctx.ops.consolidate(tenant, request.agent_id)
        return empty_pb2.Empty()

    # ---- the console's views ----
    @unary
    async def GetContextWindow(self, tenant: str, request: agent_pb2.GetAgentRequest, context: Any) -> Any:
        return await console_reads(self.ctx).context_window(tenant, request.agent_id)

    @unary
    async def ListTurns(self, tenant: str, request: console_pb2.ListTurnsRequest, context: Any) -> Any:
        return await console_reads(self.ctx).turns(tenant, request.agent_id, request.limit)

    @unary
    async def GetTurn(self, tenant: str, request: console_pb2.GetTurnRequest, context: Any) -> Any:
        return await console_reads(self.ctx).turn(tenant, request.agent_id, request.turn_id)

    @unary
    async def GetAgentUsage(self, tenant: str, request: console_pb2.AgentUsageRequest, context: Any) -> Any:
        return await console_reads(self.ctx).usage(tenant, request.agent_id, request.since, request.bucket_seconds)


def _size(page_size: int) -> int:
    return min(page_size, 100) if page_size > 0 else 20


def add_to_server(servicer: AgentServicer, server: grpc.aio.Server) -> None:
    """Register `servicer`: a unary request that does not parse reaches its handler as `Malformed`
    (INVALID_ARGUMENT with the reason) instead of being UNKNOWN."""
    register(servicer, agent_pb2.DESCRIPTOR.services_by_name["AgentService"], server)
