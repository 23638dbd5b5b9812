"""OrchestratorService: consumes turns from JetStream, runs the agent loop, publishes events.

It serves gRPC health (and reflection) on `settings.orchestrator_port`, and the internal ToolService
(what a registered MCP server offers) there and over NATS RPC. It runs the MCP clients: a stdio MCP
server is a child process of the orchestrator replica that calls it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mnemo.common import ids, natsrpc, rpcclient, subjects
from mnemo.common.config import Settings
from mnemo.common.events import EventPublisher
from mnemo.common.grpcutil import GrpcServer, client_channel
from mnemo.common.natsutil import connect, ensure_jetstream
from mnemo.orchestrator.consolidator import Consolidator
from mnemo.orchestrator.consumer import TurnConsumer
from mnemo.orchestrator.leases import LeaseManager
from mnemo.orchestrator.mcp_client import McpTools
from mnemo.orchestrator.runner import TurnRunner
from mnemo.orchestrator.timers import JetStreamTimers
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.orchestrator.tool_service import ToolServicer
from mnemo.v1 import llm_pb2_grpc, memory_pb2_grpc, tools_pb2_grpc

log = logging.getLogger(__name__)


class OrchestratorService:
    """A stateless orchestrator replica; any number of them share the TURNS work queue."""

    def __init__(self, settings: Settings, memory_target: str | None = None,
                 llm_target: str | None = None, counter: TokenCounter | None = None) -> None:
        self.settings = settings
        self.memory_target = memory_target or settings.memory_target
        self.llm_target = llm_target or settings.llm_target
        self.replica_id = ids.new_id("orch")
        self.counter = counter or TokenCounter.for_settings(settings)
        self.nc: Any = None
        self.grpc: GrpcServer | None = None
        self.consumer: TurnConsumer | None = None
        self.consolidator: Consolidator | None = None
        self.runner: TurnRunner | None = None
        self.mcp: McpTools | None = None
        self.rpc: natsrpc.NatsRpcServer | None = None
        self._channels: list[Any] = []
        self.address = ""
        self.warmup: asyncio.Future[None] | None = None

    async def start(self) -> None:
        # The default model's tokenizer, loaded while nobody waits (else the first turn after a start
        # waits ~0.3 s for it).
        self.warmup = asyncio.get_running_loop().run_in_executor(None, self._prepare_tokenizer)
        self.nc = await connect(self.settings.nats_servers, f"mnemo-orchestrator-{self.replica_id}",
                                shared=self.settings.rpc_local)
        js = self.nc.jetstream()
        buckets = await ensure_jetstream(js, self.settings.jetstream_replicas)
        memory_ch = client_channel(self.memory_target)
        llm_ch = client_channel(self.llm_target)
        self._channels = [memory_ch, llm_ch]
        memory = rpcclient.memory_client(self.settings, self.nc, memory_pb2_grpc.MemoryServiceStub(memory_ch))
        llm = rpcclient.llm_client(self.settings, self.nc, llm_pb2_grpc.LLMServiceStub(llm_ch))
        self.mcp = McpTools(memory, self.settings.mcp_call_timeout)
        self.runner = TurnRunner(self.settings, memory, llm,
                                 EventPublisher.for_replicas(js, self.settings.jetstream_replicas), self.counter,
                                 tools=self.mcp, timers=JetStreamTimers(js))
        leases = LeaseManager(buckets[subjects.KV_LEASES], self.replica_id, self.settings.orchestrator_lease_ttl)
        self.consumer = TurnConsumer(js, leases, self.runner, self.settings.orchestrator_concurrency,
                                     self.settings.orchestrator_ack_wait,
                                     replicas=self.settings.jetstream_replicas)
        if self.settings.orchestrator_consolidation:
            self.consolidator = Consolidator(js, leases, memory, llm)
        self.grpc = GrpcServer("orchestrator", self.settings.host, self.settings.orchestrator_port)
        tools = ToolServicer(self.mcp)
        self.grpc.add(tools_pb2_grpc.add_ToolServiceServicer_to_server, tools, "mnemo.v1.ToolService")
        await self.grpc.start()
        self.address = self.grpc.address
        self.rpc = natsrpc.NatsRpcServer(self.nc, self.settings.rpc_group, natsrpc.TOOLS, natsrpc.TOOL_SERVICE, tools)
        await self.rpc.start()
        await self.consumer.start()
        if self.consolidator is not None:
            await self.consolidator.start()
        log.info("orchestrator %s consuming turns; health on %s", self.replica_id, self.address)

    def _prepare_tokenizer(self) -> None:
        try:
            self.counter.prepare(self.settings.default_model)
        except Exception as exc:  # counted (and reported) at the first step instead
            log.warning("tokenizer of %s not loaded ahead: %s", self.settings.default_model, exc)

    async def stop(self) -> None:
        """Stop consuming; turns in progress are handed back to JetStream for another replica."""
        # Together: each waits for its pull in progress to end (up to a second).
        await asyncio.gather(*(part.stop() for part in (self.consolidator, self.consumer) if part is not None))
        self.consolidator = self.consumer = None
        if self.rpc is not None:
            await self.rpc.stop()
            self.rpc = None
        if self.mcp is not None:
            await self.mcp.close()  # stdio servers: their processes end with their sessions
            self.mcp = None
        if self.grpc is not None:
            await self.grpc.stop(grace=0.5)
            self.grpc = None
        for ch in self._channels:
            await ch.close()
        self._channels = []
        if self.nc is not None:
            await self.nc.drain()
            self.nc = None
