"""MemoryService: wires the gRPC API (mnemo.v1.MemoryService) to the domain modules."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from google.protobuf import empty_pb2

from mnemo.common import natsrpc, rpcclient, subjects
from mnemo.common.config import Settings
from mnemo.common.events import EventPublisher
from mnemo.common.grpcutil import GrpcServer
from mnemo.common.natsutil import connect, ensure_jetstream, leader_view
from mnemo.common.retry import Backoff, retry_forever
from mnemo.common.telemetry import span
from mnemo.memory import state_records
from mnemo.memory.agents import Agents
from mnemo.memory.archival import sweep_expired
from mnemo.memory.backlog import TurnBacklog
from mnemo.memory.checkpoints import Checkpoints
from mnemo.memory.commitlog import CommitLog
from mnemo.memory.dedup import ClaimBook
from mnemo.memory.documents import DocumentIngest
from mnemo.memory.edits import CoreEdits
from mnemo.memory.handlers import _abort, rpc
from mnemo.memory.llm_client import LLMClient
from mnemo.memory.mcp_servers import McpServers
from mnemo.memory.memories import Memories
from mnemo.memory.recall import AgentModels, RecallIndexer
from mnemo.memory.search import create_backend
from mnemo.memory.search.base import SearchBackend
from mnemo.memory.shared_blocks import SharedBlocks
from mnemo.memory.store import AgentStore
from mnemo.memory.templates import TemplateStore
from mnemo.memory.transfer import Transfer
from mnemo.v1 import memory_pb2, memory_pb2_grpc

log = logging.getLogger(__name__)
RECOVERY_BACKOFF = Backoff(base=0.5, cap=30.0)


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    # In-process calls (common/localrpc.py): these responses are made for each call (a read parses the
    # stored state anew, store.read_cached), so they are not copied on the way back.
    LOCAL_FRESH_RESPONSES = frozenset({"GetContext", "CommitStep"})

    def __init__(self, service: MemoryService) -> None:
        self.svc = service

    @property
    def agents(self) -> Agents:
        return self.svc.agents

    # ---- agents ----
    @rpc("create_agent")
    async def CreateAgent(self, request, context):
        return await self.agents.create(request)

    @rpc("get_agent")
    async def GetAgent(self, request, context):
        return await self.agents.get(request.tenant_id, request.agent_id)

    @rpc("list_agents")
    async def ListAgents(self, request, context):
        return await self.agents.list(request)

    @rpc("update_agent")
    async def UpdateAgent(self, request, context):
        return await self.agents.update(request)

    @rpc("delete_agent")
    async def DeleteAgent(self, request, context):
        await self.svc.delete_agent(request.tenant_id, request.agent_id)
        return empty_pb2.Empty()

    @rpc("get_context")
    async def GetContext(self, request, context):
        return await self.agents.get_context(request.tenant_id, request.agent_id)

    @rpc("commit_step")
    async def CommitStep(self, request, context):
        return await self.agents.commit_step(request)

    @rpc("get_core_memory")
    async def GetCoreMemory(self, request, context):
        return await self.svc.edits.core_memory(request.tenant_id, request.agent_id)

    @rpc("update_block")
    async def UpdateBlock(self, request, context):
        return await self.svc.edits.update_block(request)

    @rpc("pop_messages")
    async def PopMessages(self, request, context):
        return await self.svc.edits.pop_messages(request)

    @rpc("rewrite_message")
    async def RewriteMessage(self, request, context):
        return await self.svc.edits.rewrite_message(request)

    # ---- documents ----
    async def IngestDocument(self, request_iterator, context):
        with span("memory.ingest_document", tracer="mnemo.memory") as s:
            last = None
            ingest = DocumentIngest(self.svc.memories)
            try:
                async for progress in ingest.run(request_iterator):
                    if last is None and ingest.ref is not None:
                        s.set_attribute("mnemo.tenant_id", ingest.ref.tenant_id)
                        s.set_attribute("mnemo.agent_id", ingest.ref.agent_id)
                    last = progress
                    yield progress
            except Exception as exc:
                await _abort(context, s, exc)
            if last is not None:
                s.set_attribute("mnemo.result_count", last.passages)
                s.set_attribute("mnemo.source_id", last.source_id)

    # ---- checkpoints, export, import ----
    @rpc("create_checkpoint")
    async def CreateCheckpoint(self, request, context):
        return await self.svc.checkpoints.create(request)

    @rpc("list_checkpoints")
    async def ListCheckpoints(self, request, context):
        return await self.svc.checkpoints.list(request.tenant_id, request.agent_id)

    @rpc("restore_checkpoint")
    async def RestoreCheckpoint(self, request, context):
        return await self.svc.checkpoints.restore(request)

    async def ExportAgent(self, request, context):
        with span("memory.export_agent", tracer="mnemo.memory",
                  attributes={"mnemo.tenant_id": request.tenant_id, "mnemo.agent_id": request.agent_id}) as s:
            sent = 0
            try:
                async for chunk in self.svc.transfer.export(request):
                    sent += len(chunk.data)
                    yield chunk
            except Exception as exc:
                await _abort(context, s, exc)
            s.set_attribute("mnemo.bytes", sent)

    async def ImportAgent(self, request_iterator, context):
        with span("memory.import_agent", tracer="mnemo.memory") as s:
            try:
                state = await self.svc.transfer.import_(request_iterator)
            except Exception as exc:
                await _abort(context, s, exc)
            s.set_attribute("mnemo.tenant_id", state.config.tenant_id)
            s.set_attribute("mnemo.agent_id", state.config.id)
            s.set_attribute("mnemo.result_count", state.recall_count + state.archival_count)
            return state

    # ---- templates ----
    @rpc("list_templates")
    async def ListTemplates(self, request, context):
        return memory_pb2.ListTemplatesResponse(
            templates=await self.svc.templates.list(request.tenant_id, request.kind))

    @rpc("get_template")
    async def GetTemplate(self, request, context):
        return await self.svc.templates.get(request.tenant_id, request.kind, request.name)

    @rpc("put_template")
    async def PutTemplate(self, request, context):
        return await self.svc.templates.put(request.tenant_id, request.template, request.create_only)

    # ---- recall ----
    @rpc("search_recall")
    async def SearchRecall(self, request, context):
        return await self.svc.memories.search_recall(request)

    @rpc("import_recall")
    async def ImportRecall(self, request, context):
        return await self.svc.memories.import_recall(request)

    # ---- archival ----
    @rpc("insert_archival")
    async def InsertArchival(self, request, context):
        return await self.svc.memories.insert_archival(request)

    @rpc("search_archival")
    async def SearchArchival(self, request, context):
        return await self.svc.memories.search_archival(request)

    @rpc("delete_archival")
    async def DeleteArchival(self, request, context):
        await self.svc.memories.delete_archival(request)
        return empty_pb2.Empty()

    @rpc("get_counts")
    async def GetCounts(self, request, context):
        return await self.svc.memories.counts(request.tenant_id, request.agent_id)

    @rpc("delete_template")
    async def DeleteTemplate(self, request, context):
        await self.svc.templates.delete(request.tenant_id, request.kind, request.name)
        return empty_pb2.Empty()

    # ---- tools ----
    @rpc("edit_agent_tools")
    async def EditAgentTools(self, request, context):
        return await self.agents.edit_tools(request)

    @rpc("put_mcp_server")
    async def PutMcpServer(self, request, context):
        return await self.svc.mcp_servers.put(request)

    @rpc("get_mcp_server")
    async def GetMcpServer(self, request, context):
        return await self.svc.mcp_servers.get(request.tenant_id, request.server_id)

    @rpc("list_mcp_servers")
    async def ListMcpServers(self, request, context):
        return memory_pb2.ListMcpServersResponse(servers=await self.svc.mcp_servers.all(request.tenant_id))

    @rpc("delete_mcp_server")
    async def DeleteMcpServer(self, request, context):
        await self.svc.mcp_servers.delete(request.tenant_id, request.server_id)
        return empty_pb2.Empty()

    # ---- shared blocks ----
    @rpc("create_shared_block")
    async def CreateSharedBlock(self, request, context):
        return await self.svc.shared.create(request)

    @rpc("get_shared_block")
    async def GetSharedBlock(self, request, context):
        return await self.svc.shared.get(request.tenant_id, request.block_id)

    @rpc("list_shared_blocks")
    async def ListSharedBlocks(self, request, context):
        return await self.svc.shared.list_blocks(request)

    @rpc("update_shared_block")
    async def UpdateSharedBlock(self, request, context):
        return await self.svc.shared.update(request)

    @rpc("delete_shared_block")
    async def DeleteSharedBlock(self, request, context):
        await self.svc.shared.delete(request)
        return empty_pb2.Empty()

    @rpc("list_shared_block_agents")
    async def ListSharedBlockAgents(self, request, context):
        return await self.svc.shared.agents_of(request)

    @rpc("attach_shared_block")
    async def AttachSharedBlock(self, request, context):
        return await self.svc.shared.attach(request)

    @rpc("detach_shared_block")
    async def DetachSharedBlock(self, request, context):
        await self.svc.shared.detach(request)
        return empty_pb2.Empty()

    # ---- archival hygiene ----
    @rpc("bulk_delete_archival")
    async def BulkDeleteArchival(self, request, context):
        return await self.svc.memories.bulk_delete_archival(request)

    @rpc("find_archival_duplicates")
    async def FindArchivalDuplicates(self, request, context):
        return await self.svc.memories.find_duplicates(request)


def make_backend(settings: Settings) -> SearchBackend:
    """The configured search backend (the search package's factory)."""
    return create_backend(settings)


class MemoryService:
    """The memory service: gRPC server over NATS KV (state), the commit log and a search backend."""

    def __init__(self, settings: Settings, backend: SearchBackend | None = None, llm_target: str | None = None,
                 *, recall_ack_wait: float = 30.0, run_indexer: bool = True) -> None:
        self.settings = settings
        self.backend = backend
        self._own_backend = backend is None
        self.recall_ack_wait = recall_ack_wait
        self.run_indexer = run_indexer
        self.indexer: RecallIndexer | None = None
        self.llm = LLMClient(llm_target or settings.llm_target)
        self.nc: Any = None
        self.grpc: GrpcServer | None = None
        self.rpc: natsrpc.NatsRpcServer | None = None
        self.address = ""
        self._recovery: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.recovered_outboxes: int | None = None  # agents checked by the start-up pass, once done

    async def start(self) -> None:
        self.nc = await connect(self.settings.nats_servers, "mnemo-memory", shared=self.settings.rpc_local)
        nc = self.nc
        self.llm.use(lambda grpc_stub: rpcclient.llm_client(self.settings, nc, grpc_stub))
        js = self.nc.jetstream()
        buckets = await ensure_jetstream(js, self.settings.jetstream_replicas)
        self.js = js
        agents_kv = buckets[subjects.KV_AGENTS]
        history = (await agents_kv.status()).history
        self.store = AgentStore(agents_kv, max_depth=state_records.max_depth(history),
                                consistent=leader_view(js, subjects.KV_AGENTS))
        await self.store.cache.watch(js, subjects.KV_AGENTS)
        self.templates = TemplateStore(buckets[subjects.KV_TEMPLATES])
        self.checkpoint_kv = buckets[subjects.KV_CHECKPOINTS]
        self.mcp_servers = McpServers(buckets[subjects.KV_MCP_SERVERS])
        self.commitlog = CommitLog(js)
        self.agents = Agents(self.settings, self.store, self.templates, self.llm, self.commitlog,
                             EventPublisher.for_replicas(js, self.settings.jetstream_replicas))
        if self.backend is None:
            self.backend = make_backend(self.settings)
        if self.backend is not None:
            await self.backend.start()
        self.agents.backend = self.backend
        self.models = AgentModels(self.store)
        self.memories = Memories(self.agents, self.backend, self.llm, self.settings,
                                 ClaimBook(buckets[subjects.KV_PASSAGE_CLAIMS]))
        self.checkpoints = Checkpoints(self.checkpoint_kv, self.agents)
        self.edits = CoreEdits(self.agents)
        self.shared = SharedBlocks(buckets[subjects.KV_BLOCKS], self.agents, self.checkpoints)
        await self.shared.watch(js)
        self.agents.shared = self.shared
        self.transfer = Transfer(self.agents, self.memories)
        if self.backend is not None:
            self._sweeper = asyncio.create_task(sweep_expired(self.backend, self.settings.archival_expiry_sweep),
                                                name="archival-expiry")
        if self.backend is not None and self.run_indexer:
            self.indexer = RecallIndexer(js, self.backend, self.llm, self.models, ack_wait=self.recall_ack_wait,
                                         linger=self.settings.recall_index_linger, backlog=TurnBacklog(js),
                                         max_defer=self.settings.recall_index_defer)
            await self.indexer.start()

        servicer = MemoryServicer(self)
        self.grpc = GrpcServer("memory", self.settings.host, self.settings.memory_port)
        self.grpc.add(memory_pb2_grpc.add_MemoryServiceServicer_to_server, servicer, "mnemo.v1.MemoryService")
        await self.grpc.start()
        self.address = self.grpc.address
        self.rpc = natsrpc.NatsRpcServer(self.nc, self.settings.rpc_group, natsrpc.MEMORY, natsrpc.MEMORY_SERVICE,
                                         servicer)
        await self.rpc.start()
        # In the background: readiness does not wait for a scan of every agent.
        self._recovery = asyncio.create_task(self._recover_commit_log(buckets[subjects.KV_AGENTS]),
                                             name="commit-log-recovery")
        log.info("memory service listening on %s", self.address)

    async def _recover_commit_log(self, agents_kv: Any) -> None:
        """Re-publish the commit outboxes a crash may have left unpublished (retried until done)."""
        checked = await retry_forever(lambda: self.commitlog.recover(agents_kv), RECOVERY_BACKOFF,
                                      "commit-log recovery", log)
        self.recovered_outboxes = checked
        log.info("commit-log recovery: %d agents with a pending outbox checked", checked)

    async def stop(self) -> None:
        for task in (self._recovery, self._sweeper):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._recovery = self._sweeper = None
        if self.rpc is not None:
            await self.rpc.stop()
            self.rpc = None
        if self.grpc is not None:
            await self.grpc.stop(grace=1.0)
            self.grpc = None
        if getattr(self, "commitlog", None) is not None:
            await self.commitlog.drain()
        if self.indexer is not None:
            await self.indexer.stop()
            self.indexer = None
        await self.llm.close()
        if getattr(self, "store", None) is not None:
            await self.store.cache.close()
        if getattr(self, "shared", None) is not None:
            await self.shared.close()
        if self.backend is not None and self._own_backend:
            await self.backend.close()
            self.backend = None
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        """Remove the agent's state, commit log, recall + archival data and checkpoints."""
        state = await self.store.get(tenant_id, agent_id)  # NotFound for unknown / other tenant's agents
        await self.shared.unlink_all(state)
        await self.commitlog.purge_agent(tenant_id, agent_id)
        await self.store.delete(tenant_id, agent_id)
        self.models.forget(tenant_id, agent_id)
        if self.backend is not None:
            await self.backend.delete_agent(tenant_id, agent_id)
        await self.checkpoints.delete_all(tenant_id, agent_id)
