"""The public gRPC API (mnemo.v1.AgentService): the REST operations, same auth, same errors."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import empty_pb2

from mnemo.common import telemetry
from mnemo.gateway.deps import GatewayContext, authenticate
from mnemo.gateway.errors import ApiError
from mnemo.gateway.events import is_final, replay
from mnemo.gateway.tenants import Principal
from mnemo.v1 import agent_pb2, agent_pb2_grpc, memory_pb2


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return detail if isinstance(detail, str) else json.dumps(detail)


async def _principal(ctx: GatewayContext, context: grpc.aio.ServicerContext) -> Principal:
    metadata = dict(context.invocation_metadata() or ())
    try:
        return await authenticate(ctx, metadata.get("authorization"))
    except ApiError as exc:
        code = grpc.StatusCode.UNAUTHENTICATED if exc.status == 401 else exc.grpc_code
        if exc.status == 429:
            context.set_trailing_metadata((("retry-after", exc.headers.get("Retry-After", "1")),))
        await context.abort(code, _detail_text(exc.detail))
        raise  # unreachable: abort raises


def unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate, run, and turn ApiError into the matching gRPC status."""

    @functools.wraps(fn)
    async def handler(self: AgentServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        who = await _principal(self.ctx, context)
        try:
            return await fn(self, who.tenant_id, request, context)
        except ApiError as exc:
            await context.abort(exc.grpc_code, _detail_text(exc.detail))
    return handler


def streaming(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """`unary` for server-streaming handlers."""

    @functools.wraps(fn)
    async def handler(self: AgentServicer, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        who = await _principal(self.ctx, context)
        try:
            async for item in fn(self, who.tenant_id, request, context):
                yield item
        except ApiError as exc:
            await context.abort(exc.grpc_code, _detail_text(exc.detail))
    return handler


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
        allowed = {"name", "model", "context_window", "preset", "limits", "summarizer_model", "metadata"}
        bad = [m for m in request.update_mask if m not in allowed]
        if bad:
            raise ApiError(400, f"update_mask may name only {sorted(allowed)}; got {bad}")
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
        options = self.ctx.options
        if not request.message:
            raise ApiError(400, "message: must not be empty")
        if len(request.message) > options.max_message_chars:
            raise ApiError(400, f"message: longer than {options.max_message_chars} characters")
        if request.role not in ("", "user", "system"):
            raise ApiError(400, "role: must be user or system")
        if len(request.idempotency_key) > 200 or request.max_steps < 0:
            raise ApiError(400, "idempotency_key: at most 200 characters; max_steps: not negative")
        await self.core.owned(tenant, request.agent_id)
        turn = await self.ctx.turns.submit(tenant, request.agent_id, request.message,
                                           role=request.role or "user", max_steps=request.max_steps,
                                           idempotency_key=request.idempotency_key or None)
        context.set_trailing_metadata((("mnemo-turn-id", turn.turn_id),))
        try:
            with telemetry.turn_scope(tenant, request.agent_id, turn.turn_id):
                async for event in self.ctx.turns.events(turn, None):
                    yield event
        finally:
            self.ctx.turns.close(turn)

    @streaming
    async def StreamEvents(self, tenant: str, request: agent_pb2.StreamEventsRequest,
                           context: Any) -> AsyncIterator[Any]:
        await self.core.get_state(tenant, request.agent_id)
        events = replay(self.ctx.js, tenant, request.agent_id, after=request.after_seq, follow=request.follow,
                        idle_timeout=self.ctx.options.sse_keepalive if request.follow else 5.0)
        try:
            async for event in events:
                if event is None or (request.turn_id and event.turn_id != request.turn_id):
                    continue
                yield event
                if request.turn_id and is_final(event):
                    return
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
        return await self.core.insert_archival(tenant, request.agent_id, list(request.passages))

    @unary
    async def DeleteArchival(self, tenant: str, request: agent_pb2.PublicDeleteArchivalRequest,
                             context: Any) -> Any:
        await self.core.delete_archival(tenant, request.agent_id, request.passage_id)
        return empty_pb2.Empty()

    async def UploadDocument(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        who = await _principal(self.ctx, context)
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None or not first.HasField("header"):
                raise ApiError(400, "the first message must carry the header")
            header = first.header

            async def data() -> AsyncIterator[bytes]:
                total = 0
                async for chunk in request_iterator:
                    total += len(chunk.data)
                    if total > self.ctx.options.max_document_bytes:
                        raise ApiError(413, f"document larger than {self.ctx.options.max_document_bytes} bytes",
                                       grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED)
                    yield chunk.data

            async for progress in self.core.ingest_document_progress(
                    who.tenant_id, header.agent_id, header.filename or "document.txt", header.content_type,
                    list(header.tags), data()):
                yield progress
        except ApiError as exc:
            await context.abort(exc.grpc_code, _detail_text(exc.detail))

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
        who = await _principal(self.ctx, context)

        async def data() -> AsyncIterator[bytes]:
            async for chunk in request_iterator:
                yield chunk.data
        try:
            return await self.core.import_agent(who.tenant_id, data())
        except ApiError as exc:
            await context.abort(exc.grpc_code, _detail_text(exc.detail))

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


def _size(page_size: int) -> int:
    return min(page_size, 100) if page_size > 0 else 20
