"""What the gateway does, independent of transport: tenant-scoped calls to the memory service.

REST (rest_*.py) and gRPC (grpc_api.py) both call this; failures are ApiError. The memory client
raises domain errors; its streaming methods are gRPC's own, whose errors `answer_failures` maps too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from mnemo.common import status
from mnemo.common.errors import MnemoError
from mnemo.common.ids import is_token
from mnemo.gateway.convert import config_agent, public_agent
from mnemo.gateway.errors import ApiError
from mnemo.v1 import agent_pb2, common_pb2, memory_pb2

T = TypeVar("T")
M = TypeVar("M")
MEMORY_TIMEOUT = 30.0
TEMPLATE_KINDS = ("persona", "human")
MEMORY = "the memory service"


@contextmanager
def answer_failures(what: str = MEMORY) -> Iterator[None]:
    """Around calls to an internal service: its failures as ApiError (a streaming call's raw gRPC
    error is first read as the domain error it stands for)."""
    try:
        yield
    except MnemoError as exc:
        raise ApiError.from_error(exc, what) from exc
    except grpc.aio.AioRpcError as exc:
        raise ApiError.from_error(status.from_rpc_error(exc), what) from exc


def check_agent_id(agent_id: str) -> None:
    """An id that cannot exist is simply not found (never a 500, never a subject injection)."""
    if not is_token(agent_id):
        raise ApiError(404, f"agent {agent_id!r} not found")


def client_tools_only(tools: Any) -> None:
    """Tools given with an agent's config are client-side tools (an MCP server's tools are attached)."""
    for tool in tools:
        if tool.kind not in ("", "client"):
            raise ApiError(400, f"tool {tool.name[:64]!r}: only client-side tools are given with the agent; "
                                "attach an MCP server's tools with POST /v1/agents/{id}/mcp-tools")
        tool.kind = "client"


class _Upload:
    """A request body streamed to the memory service in a client-streaming call.

    A failing body (e.g. BodyTooLarge) makes grpc cancel the call: the body's own error is reported
    then, not the cancellation.
    """

    def __init__(self, data: AsyncIterator[bytes]) -> None:
        self.data = data
        self.error: BaseException | None = None

    async def messages(self, first: M, wrap: Callable[[bytes], M]) -> AsyncIterator[M]:
        """`first`, then each non-empty piece of the body as `wrap(piece)`."""
        yield first
        try:
            async for piece in self.data:
                if piece:
                    yield wrap(piece)
        except Exception as exc:  # reported by reporting(), not as a gRPC error
            self.error = exc
            raise

    @contextmanager
    def reporting(self) -> Iterator[None]:
        """Around the call: the body's error if it failed, else the call's as an ApiError."""
        try:
            with answer_failures():
                yield
        except (ApiError, asyncio.CancelledError) as exc:
            if self.error is not None and exc is not self.error:
                raise self.error from exc
            raise


class Core:
    """Tenant-scoped operations over the memory service's gRPC API."""

    def __init__(self, memory: Any, owner_ttl: float = 5.0) -> None:
        """`memory`: the memory service's client (`mnemo.common.rpcclient.memory_client`)."""
        self.memory = memory
        self.owner_ttl = owner_ttl
        self._owned: dict[tuple[str, str], float] = {}

    async def owned(self, tenant_id: str, agent_id: str) -> common_pb2.AgentRef:
        """The agent's ref once the tenant is known to own it (404 otherwise).

        Defence in depth: the memory service filters by tenant too; positive answers are cached
        for `owner_ttl` seconds (a deleted agent is then still refused by the memory service).
        """
        ref = self.ref(tenant_id, agent_id)
        key = (tenant_id, agent_id)
        now = time.monotonic()
        if self._owned.get(key, 0.0) < now:
            await self.call(self.memory.GetAgent, ref)
            if len(self._owned) > 50_000:
                self._owned.clear()
            self._owned[key] = now + self.owner_ttl
        return ref

    async def call(self, method: Callable[..., Awaitable[T]], request: Any,
                   timeout: float = MEMORY_TIMEOUT) -> T:
        try:
            return await method(request, timeout=timeout)
        except MnemoError as exc:
            raise ApiError.from_error(exc, MEMORY) from exc

    @staticmethod
    def ref(tenant_id: str, agent_id: str) -> common_pb2.AgentRef:
        check_agent_id(agent_id)
        return common_pb2.AgentRef(tenant_id=tenant_id, agent_id=agent_id)

    # ---- agents ----
    async def create_agent(self, tenant_id: str, request: memory_pb2.CreateAgentRequest) -> agent_pb2.Agent:
        request.tenant_id = tenant_id
        request.config.tenant_id = tenant_id
        request.config.id = ""
        client_tools_only(request.config.tools)
        return public_agent(await self.call(self.memory.CreateAgent, request))

    async def get_state(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        return await self.call(self.memory.GetAgent, self.ref(tenant_id, agent_id))

    async def get_agent(self, tenant_id: str, agent_id: str) -> agent_pb2.Agent:
        return public_agent(await self.get_state(tenant_id, agent_id))

    async def list_agents(self, tenant_id: str, page: int, page_size: int) -> memory_pb2.ListAgentsResponse:
        return await self.call(self.memory.ListAgents, memory_pb2.ListAgentsRequest(
            tenant_id=tenant_id, page=page, page_size=page_size))

    @staticmethod
    def list_view(resp: memory_pb2.ListAgentsResponse) -> list[agent_pb2.Agent]:
        return [config_agent(cfg) for cfg in resp.agents]

    async def update_agent(self, tenant_id: str, agent_id: str, config: common_pb2.AgentConfig,
                           mask: list[str]) -> agent_pb2.Agent:
        config.id = agent_id
        config.tenant_id = tenant_id
        client_tools_only(config.tools)
        if not mask:
            return await self.get_agent(tenant_id, agent_id)
        state = await self.call(self.memory.UpdateAgent, memory_pb2.UpdateAgentRequest(
            ref=await self.owned(tenant_id, agent_id), config=config, update_mask=mask))
        return public_agent(state)

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        await self.call(self.memory.DeleteAgent, self.ref(tenant_id, agent_id))
        self._owned.pop((tenant_id, agent_id), None)

    # ---- core memory and queue ----
    async def core_memory(self, tenant_id: str, agent_id: str) -> memory_pb2.CoreMemory:
        return await self.call(self.memory.GetCoreMemory, await self.owned(tenant_id, agent_id))

    async def get_block(self, tenant_id: str, agent_id: str, label: str) -> common_pb2.MemoryBlock:
        core = await self.core_memory(tenant_id, agent_id)
        for block in core.blocks:
            if block.label == label:
                return block
        raise ApiError(404, f"memory block {label!r} not found")

    async def set_block(self, tenant_id: str, agent_id: str, label: str, value: str,
                        limit: int = 0) -> common_pb2.MemoryBlock:
        return await self.call(self.memory.UpdateBlock, memory_pb2.UpdateBlockRequest(
            ref=await self.owned(tenant_id, agent_id), label=label, op="set", value=value, limit=limit))

    async def pop_messages(self, tenant_id: str, agent_id: str, count: int) -> memory_pb2.PopMessagesResponse:
        return await self.call(self.memory.PopMessages, memory_pb2.PopMessagesRequest(
            ref=await self.owned(tenant_id, agent_id), count=count))

    async def rewrite_message(self, tenant_id: str, agent_id: str, text: str,
                              message_id: str = "") -> common_pb2.Message:
        return await self.call(self.memory.RewriteMessage, memory_pb2.RewriteMessageRequest(
            ref=await self.owned(tenant_id, agent_id), message_id=message_id, text=text))

    # ---- recall / archival ----
    async def search_recall(self, tenant_id: str, agent_id: str, *, query: str = "", start: str = "",
                            end: str = "", role: str = "", page: int = 1,
                            page_size: int = 20) -> memory_pb2.SearchRecallResponse:
        return await self.call(self.memory.SearchRecall, memory_pb2.SearchRecallRequest(
            ref=await self.owned(tenant_id, agent_id), query=query, start=start, end=end, role=role, page=page,
            page_size=page_size))

    async def import_recall(self, tenant_id: str, agent_id: str,
                            messages: list[common_pb2.Message]) -> memory_pb2.ImportRecallResponse:
        return await self.call(self.memory.ImportRecall, memory_pb2.ImportRecallRequest(
            ref=await self.owned(tenant_id, agent_id), messages=messages))

    async def search_archival(self, tenant_id: str, agent_id: str, *, query: str = "",
                              tags: list[str] | None = None, page: int = 1,
                              page_size: int = 20) -> memory_pb2.SearchArchivalResponse:
        return await self.call(self.memory.SearchArchival, memory_pb2.SearchArchivalRequest(
            ref=await self.owned(tenant_id, agent_id), query=query, tags=tags or [], page=page, page_size=page_size))

    async def insert_archival(self, tenant_id: str, agent_id: str, passages: list[memory_pb2.PassageInput],
                              dedup: str = "") -> memory_pb2.InsertArchivalResponse:
        return await self.call(self.memory.InsertArchival, memory_pb2.InsertArchivalRequest(
            ref=await self.owned(tenant_id, agent_id), passages=passages, dedup=dedup))

    async def delete_archival(self, tenant_id: str, agent_id: str, passage_id: str) -> None:
        if not passage_id or len(passage_id) > 200:
            raise ApiError(404, f"passage {passage_id!r} not found")
        await self.call(self.memory.DeleteArchival, memory_pb2.DeleteArchivalRequest(
            ref=await self.owned(tenant_id, agent_id), passage_id=passage_id))

    async def ingest_document(self, tenant_id: str, agent_id: str, filename: str, content_type: str,
                              tags: list[str], data: AsyncIterator[bytes]) -> memory_pb2.IngestProgress:
        """Stream a document to the memory service; the final progress report."""
        last = memory_pb2.IngestProgress()
        async for progress in self.ingest_document_progress(tenant_id, agent_id, filename, content_type, tags,
                                                            data):
            last = progress
        return last

    async def ingest_document_progress(self, tenant_id: str, agent_id: str, filename: str, content_type: str,
                                       tags: list[str],
                                       data: AsyncIterator[bytes]) -> AsyncIterator[memory_pb2.IngestProgress]:
        """Stream a document to the memory service, yielding its progress reports."""
        ref = await self.owned(tenant_id, agent_id)  # 404 before reading the body
        body = _Upload(data)
        header = memory_pb2.DocumentChunk(header=memory_pb2.DocumentHeader(
            ref=ref, filename=filename, content_type=content_type, tags=tags))
        with body.reporting():
            async for progress in self.memory.IngestDocument(
                    body.messages(header, lambda piece: memory_pb2.DocumentChunk(data=piece)), timeout=3600.0):
                yield progress
        if body.error is not None:
            raise body.error

    # ---- checkpoints, export / import ----
    async def create_checkpoint(self, tenant_id: str, agent_id: str, name: str) -> common_pb2.Checkpoint:
        return await self.call(self.memory.CreateCheckpoint, memory_pb2.CreateCheckpointRequest(
            ref=await self.owned(tenant_id, agent_id), name=name))

    async def list_checkpoints(self, tenant_id: str, agent_id: str) -> memory_pb2.ListCheckpointsResponse:
        return await self.call(self.memory.ListCheckpoints, await self.owned(tenant_id, agent_id))

    async def restore_checkpoint(self, tenant_id: str, agent_id: str, checkpoint_id: str) -> agent_pb2.Agent:
        if not checkpoint_id or len(checkpoint_id) > 200:
            raise ApiError(404, f"checkpoint {checkpoint_id!r} not found")
        state = await self.call(self.memory.RestoreCheckpoint, memory_pb2.RestoreCheckpointRequest(
            ref=await self.owned(tenant_id, agent_id), checkpoint_id=checkpoint_id))
        return public_agent(state)

    async def export_agent(self, tenant_id: str, agent_id: str) -> AsyncIterator[bytes]:
        """The export's bytes; the first chunk is fetched before returning, so a 404 comes early."""
        stream = self.memory.ExportAgent(await self.owned(tenant_id, agent_id), timeout=3600.0)
        with answer_failures():
            first = await stream.read()

        async def rest() -> AsyncIterator[bytes]:
            if first is not grpc.aio.EOF:
                yield first.data
                async for chunk in stream:
                    yield chunk.data
        return rest()

    async def import_agent(self, tenant_id: str, data: AsyncIterator[bytes]) -> agent_pb2.Agent:
        body = _Upload(data)
        with body.reporting():
            state = await self.memory.ImportAgent(body.messages(
                memory_pb2.ImportChunk(tenant_id=tenant_id), lambda piece: memory_pb2.ImportChunk(data=piece)),
                timeout=3600.0)
        return public_agent(state)

    # ---- templates ----
    @staticmethod
    def check_kind(kind: str) -> None:
        if kind not in TEMPLATE_KINDS:
            raise ApiError(400, f"template kind must be one of {', '.join(TEMPLATE_KINDS)}")

    async def list_templates(self, tenant_id: str, kind: str) -> memory_pb2.ListTemplatesResponse:
        self.check_kind(kind)
        return await self.call(self.memory.ListTemplates, memory_pb2.ListTemplatesRequest(
            tenant_id=tenant_id, kind=kind))

    async def get_template(self, tenant_id: str, kind: str, name: str) -> common_pb2.Template:
        self.check_kind(kind)
        return await self.call(self.memory.GetTemplate, memory_pb2.TemplateRef(
            tenant_id=tenant_id, kind=kind, name=name))

    async def put_template(self, tenant_id: str, kind: str, name: str, text: str,
                           create_only: bool) -> common_pb2.Template:
        self.check_kind(kind)
        return await self.call(self.memory.PutTemplate, memory_pb2.PutTemplateRequest(
            tenant_id=tenant_id, template=common_pb2.Template(kind=kind, name=name, text=text),
            create_only=create_only))

    async def delete_template(self, tenant_id: str, kind: str, name: str) -> None:
        self.check_kind(kind)
        await self.call(self.memory.DeleteTemplate, memory_pb2.TemplateRef(
            tenant_id=tenant_id, kind=kind, name=name))
