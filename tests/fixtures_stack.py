"""The whole stack in-process: llm-proxy (against the scripted model), memory, orchestrator, gateway.

Usage in a test module:
    from tests.fixtures_stack import stack  # noqa: F401

    async def test_x(stack):
        async with stack.http() as http:                     # httpx client with the tenant's key
            agent = (await http.post("/v1/agents", json={"name": "a"})).json()
        stack.scripted_llm.script([...])                    # the scripted model of this test

`stack` depends only on conftest fixtures (nats_url, scripted_llm, tmp_path), so importing it alone
is enough; `module_stack` is the same stack shared by one test module. Every test gets a fresh
tenant and key; `stack.new_tenant()` makes more (isolation tests).
`StackRunner` starts the same stack by hand (other scopes, other gateway options).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mnemo.common.config import Settings
from mnemo.common.grpcutil import client_channel
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.server import GatewayService
from mnemo.memory.server import MemoryService
from mnemo.orchestrator.server import OrchestratorService
from mnemo.v1 import agent_pb2_grpc
from tests.fixtures_llm import start_llm_service

ADMIN_KEY = "admin-test-key-0123456789"
STOP_TIMEOUT = 3.0


# ---- llm-proxy: the real LlmProxyService, its openai provider on the scripted model ------------------

async def _start_llm_proxy(nats_url: str, scripted_base_url: str) -> Any:
    return await start_llm_service(scripted_base_url, nats_url)


# ---- the stack ------------------------------------------------------------------------------------------

@dataclass
class Tenant:
    id: str
    api_key: str
    key_id: str


@dataclass
class Stack:
    """A running stack. `api_key` belongs to `tenant_id`; `admin_key` is the MNEMO_ADMIN_KEY."""

    base_url: str
    grpc_address: str
    api_key: str
    tenant_id: str
    admin_key: str
    scripted_llm: Any
    gateway: GatewayService
    memory: MemoryService
    orchestrator: OrchestratorService
    llm: Any
    _channels: list[Any] = field(default_factory=list)

    def http(self, api_key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client on the REST API, authenticated with `api_key` (default: this tenant's)."""
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=kwargs.pop("timeout", 60.0),
                                 **kwargs)

    def agent_stub(self) -> agent_pb2_grpc.AgentServiceStub:
        """A gRPC AgentService client (pass metadata=stack.grpc_auth() on each call)."""
        channel = client_channel(self.grpc_address)
        self._channels.append(channel)
        return agent_pb2_grpc.AgentServiceStub(channel)

    def grpc_auth(self, api_key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key if api_key is None else api_key}"),)

    async def new_tenant(self, name: str = "tenant") -> Tenant:
        """Another tenant with its own key (through the admin API)."""
        async with httpx.AsyncClient(base_url=self.base_url,
                                     headers={"Authorization": f"Bearer {self.admin_key}"}) as admin:
            r = await admin.post("/v1/admin/tenants", json={"name": name})
            r.raise_for_status()
            tenant_id = r.json()["id"]
            r = await admin.post(f"/v1/admin/tenants/{tenant_id}/keys", json={})
            r.raise_for_status()
            return Tenant(tenant_id, r.json()["key"], r.json()["id"])

    async def create_agent(self, api_key: str | None = None, **body: Any) -> dict[str, Any]:
        async with self.http(api_key) as http:
            r = await http.post("/v1/agents", json={"name": "test-agent", **body})
            assert r.status_code == 201, r.text
            return r.json()


class StackRunner:
    """Starts and stops the four services in-process on one NATS server."""

    def __init__(self, nats_url: str, home: Path, scripted_llm: Any, options: GatewayOptions | None = None) -> None:
        self.nats_url = nats_url
        self.home = home
        self.scripted_llm = scripted_llm
        self.options = options or GatewayOptions(local_bootstrap=False)
        self.started: list[Any] = []

    async def start(self) -> Stack:
        try:
            llm = await _start_llm_proxy(self.nats_url, self.scripted_llm.base_url)
            self.started.append(llm)
            group = llm.settings.rpc_group
            memory = MemoryService(Settings(nats_url=self.nats_url, home=self.home / "memory", memory_port=0,
                                            rpc_group=group), llm_target=llm.address)
            await memory.start()
            self.started.append(memory)
            orchestrator = OrchestratorService(Settings(nats_url=self.nats_url, orchestrator_port=0,
                                                        rpc_group=group),
                                               memory_target=memory.address, llm_target=llm.address)
            await orchestrator.start()
            self.started.append(orchestrator)
            gateway = GatewayService(
                Settings(nats_url=self.nats_url, home=self.home / "gateway", http_port=0, grpc_port=0,
                         admin_key=ADMIN_KEY, rpc_group=group),
                memory_target=memory.address, llm_target=llm.address,
                orchestrator_target=orchestrator.address, options=self.options)
            await gateway.start()
            self.started.append(gateway)
        except BaseException:
            await self.stop()
            raise
        tenant = await gateway.context.tenants.create_tenant("test")
        key, _record = await gateway.context.tenants.create_key(tenant["id"])
        self.stack = Stack(base_url=gateway.base_url, grpc_address=gateway.address, api_key=key,
                           tenant_id=tenant["id"], admin_key=ADMIN_KEY, scripted_llm=self.scripted_llm,
                           gateway=gateway, memory=memory, orchestrator=orchestrator, llm=llm)
        return self.stack

    async def stop(self) -> None:
        stack = getattr(self, "stack", None)
        for channel in stack._channels if stack else []:
            await channel.close()
        while self.started:
            service = self.started.pop()
            try:
                await asyncio.wait_for(service.stop(), STOP_TIMEOUT)
            except Exception:
                nc = getattr(service, "nc", None)
                if nc is not None and not nc.is_closed:
                    await nc.close()


@pytest.fixture
async def stack(nats_url: str, scripted_llm: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The four services in-process on the session NATS, a fresh tenant and key, the scripted model."""
    runner = StackRunner(nats_url, tmp_path / "stack", scripted_llm)
    yield await runner.start()
    await runner.stop()


@pytest.fixture(scope="module")
async def module_stack(nats_url: str, scripted_llm_server: Any,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack for a whole test module (faster); tests that script the model also take `scripted_llm`
    (which resets it). Each test should create its own agents / tenants."""
    runner = StackRunner(nats_url, tmp_path_factory.mktemp("stack"), scripted_llm_server)
    yield await runner.start()
    await runner.stop()
