"""GatewayService: REST (FastAPI on uvicorn, in-process) + public gRPC AgentService over one NATS link."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import uvicorn
from nats.js.api import KeyValueConfig, StorageType
from starlette.routing import Route

from mnemo.common import rpcclient, subjects
from mnemo.common.config import Settings
from mnemo.common.grpcutil import GrpcServer, client_channel
from mnemo.common.natsutil import DAY, connect, ensure_jetstream, ensure_kv, replicated_kv
from mnemo.gateway.app import create_app
from mnemo.gateway.core import Core
from mnemo.gateway.deps import GatewayContext
from mnemo.gateway.events import EventHub
from mnemo.gateway.grpc_api import AgentServicer, add_to_server
from mnemo.gateway.health import HealthChecker
from mnemo.gateway.mcp_mount import PATH as MCP_PATH
from mnemo.gateway.mcp_mount import McpMount
from mnemo.gateway.models import ModelLister
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.ratelimit import RateLimiter, TenantLimits
from mnemo.gateway.tenants import TenantStore
from mnemo.gateway.tools import ToolOps
from mnemo.gateway.turns import TurnSubmitter
from mnemo.v1 import llm_pb2_grpc, memory_pb2_grpc, tools_pb2_grpc

log = logging.getLogger(__name__)

# Keyed turns are remembered as long as their events are kept, so a late retry finds its turn.
IDEMPOTENCY_BUCKET = KeyValueConfig(bucket=subjects.KV_IDEMPOTENCY, history=1, ttl=7 * DAY,
                                    storage=StorageType.FILE,
                                    description="gateway: when each idempotency-keyed turn was accepted")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (the process runner owns SIGINT/SIGTERM), and without
    its ten wake-ups a second: its main loop looks at the clock once a second (the Date header has
    that resolution anyway) and ends as soon as `exit` is called."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn versions
        return None

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()

    async def main_loop(self) -> None:
        ticks = 0
        while not await self.on_tick(ticks):  # a multiple of 10: on_tick refreshes the Date header
            ticks = (ticks + 10) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._exit.wait()


class GatewayService:
    """The edge of Mnemo. After `start()`: `.address` (gRPC), `.http_port`, `.base_url`, `.api_key`
    (the local tenant's key when local bootstrap is on)."""

    def __init__(self, settings: Settings, memory_target: str | None = None, llm_target: str | None = None,
                 orchestrator_target: str | None = None, options: GatewayOptions | None = None) -> None:
        self.settings = settings
        self.options = options or GatewayOptions()
        self.memory_target = memory_target or settings.memory_target
        self.llm_target = llm_target or settings.llm_target
        self.orchestrator_target = orchestrator_target or f"{settings.host}:{settings.orchestrator_port}"
        self.address = ""
        self.http_port = 0
        self.base_url = ""
        self.api_key: str | None = None
        self.nc: Any = None
        self.hub: EventHub | None = None
        self.grpc: GrpcServer | None = None
        self._channel: Any = None
        self._llm_channel: Any = None
        self._tool_channel: Any = None
        self.mcp: McpMount | None = None
        self._http: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings, options = self.settings, self.options
        self.nc = await connect(settings.nats_servers, "mnemo-gateway", shared=settings.rpc_local)
        js = self.nc.jetstream()
        buckets = await ensure_jetstream(js, self.settings.jetstream_replicas)
        idempotency = await ensure_kv(js, replicated_kv(IDEMPOTENCY_BUCKET, settings.jetstream_replicas))
        tenants = TenantStore(buckets[subjects.KV_TENANTS], cache_ttl=options.key_cache_ttl,
                              default_limits=TenantLimits(options.rate_per_second, options.rate_burst))
        if options.local_bootstrap:
            self.api_key = await tenants.ensure_local_key(settings.home_dir / "api_key")
        self.hub = EventHub(js)
        await self.hub.start()  # before serving: every turn's waiter sees all its events
        self._channel = client_channel(self.memory_target)
        self._llm_channel = client_channel(self.llm_target)
        self._tool_channel = client_channel(self.orchestrator_target)
        core = Core(rpcclient.memory_client(settings, self.nc, memory_pb2_grpc.MemoryServiceStub(self._channel)))
        turns = TurnSubmitter(js, self.hub, idempotency)
        tool_service = rpcclient.tool_client(settings, self.nc, tools_pb2_grpc.ToolServiceStub(self._tool_channel))
        health = HealthChecker({"memory": self.memory_target, "llm-proxy": self.llm_target,
                                "orchestrator": self.orchestrator_target}, ttl=options.health_cache_ttl)
        self.context = GatewayContext(settings=settings, options=options, core=core, turns=turns,
                                      tools=ToolOps(core, turns, tool_service, settings.mcp_stdio_allow),
                                      tenants=tenants,
                                      limiter=RateLimiter(),
                                      health=health, js=js,
                                      models=ModelLister(rpcclient.llm_client(
                                          settings, self.nc, llm_pb2_grpc.LLMServiceStub(self._llm_channel))))
        self.app = create_app(self.context, self.nc)
        self.mcp = McpMount(self.context, self.app)
        self.app.router.routes.append(Route(MCP_PATH, endpoint=self.mcp, methods=["POST"], include_in_schema=False))

        self.grpc = GrpcServer("gateway", settings.host, settings.grpc_port)
        self.grpc.add(add_to_server, AgentServicer(self.context), "mnemo.v1.AgentService")
        await self.grpc.start()
        self.address = self.grpc.address

        config = uvicorn.Config(self.app, host=settings.host, port=settings.http_port, log_level="warning",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=3,
                                timeout_keep_alive=int(options.keep_alive))
        self._http = _Uvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._http_task.done():
                await self._http_task
                raise RuntimeError(f"the REST server could not start on {settings.host}:{settings.http_port}")
            await asyncio.sleep(0.01)
        sock = self._http.servers[0].sockets[0]
        self.http_port = sock.getsockname()[1]
        self.base_url = f"http://{settings.host}:{self.http_port}"
        log.info("gateway listening: REST %s, gRPC %s", self.base_url, self.address)

    async def stop(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.exit()
            try:
                await asyncio.wait_for(self._http_task, 10)
            except (TimeoutError, Exception):
                self._http_task.cancel()
            self._http = None
        if self.grpc is not None:
            await self.grpc.stop(grace=1.0)
            self.grpc = None
        if self.mcp is not None:
            await self.mcp.stop()
            self.mcp = None
        if self.hub is not None:
            await self.hub.stop()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        for name in ("_llm_channel", "_tool_channel"):
            channel = getattr(self, name)
            if channel is not None:
                await channel.close()
                setattr(self, name, None)
        if self.nc is not None:
            try:
                await self.nc.drain()
            except Exception:
                pass
            self.nc = None
