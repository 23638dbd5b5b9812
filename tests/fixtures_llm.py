"""Fixtures of the llm-proxy: `llm_service` (in-process, openai provider on the scripted model, the
local provider and local embeddings, usage metering on the session NATS) and `llm_stub`.

Usage in a test module:
    from tests.fixtures_llm import llm_service, llm_stub  # noqa: F401
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mnemo.common.config import Settings
from mnemo.common.grpcutil import client_channel
from mnemo.llm_proxy.config import ProviderConfig, ProxyConfig, local_provider
from mnemo.llm_proxy.server import LlmProxyService
from mnemo.v1 import llm_pb2_grpc


def scripted_config(base_url: str, **overrides: Any) -> ProxyConfig:
    """The openai provider on `base_url` (every model name routes to it) plus the local provider;
    fast retries so resilience tests stay quick. `overrides` apply to the openai provider."""
    provider = {"name": "openai", "base_url": base_url, "api_key": "test", "timeout": 10.0,
                "max_retries": 2, **overrides}
    return ProxyConfig(providers=[ProviderConfig(**provider), local_provider()], default_model="gpt-4o-mini",
                       retry_base_delay=0.01, retry_max_delay=0.1)


def llm_settings(nats_url: str | None = None, **overrides: Any) -> Settings:
    overrides.setdefault("rpc_group", new_rpc_group())
    return Settings(llm_port=0, nats_url=nats_url or "nats://127.0.0.1:1", **overrides)


def new_rpc_group() -> str:
    """A NATS RPC group of one test's services: services of other tests on the session NATS never
    answer their calls."""
    return f"t{uuid.uuid4().hex[:12]}"


def rpc_group_of(service: Any) -> str:
    """The RPC group of a started service (a fresh one for a bare gRPC address)."""
    settings = getattr(service, "settings", None)
    return settings.rpc_group if settings is not None else new_rpc_group()


async def start_llm_service(base_url: str, nats_url: str | None = None, config: ProxyConfig | None = None,
                            **overrides: Any) -> LlmProxyService:
    service = LlmProxyService(llm_settings(nats_url), config or scripted_config(base_url, **overrides))
    await service.start()
    return service


@pytest.fixture
async def llm_service(scripted_llm: Any, nats_url: str) -> AsyncIterator[LlmProxyService]:
    """A started LlmProxyService (`.address`) whose openai provider is the scripted model."""
    service = await start_llm_service(scripted_llm.base_url, nats_url)
    yield service
    await service.stop()


@pytest.fixture
async def llm_stub(llm_service: LlmProxyService) -> AsyncIterator[llm_pb2_grpc.LLMServiceStub]:
    """A gRPC client of `llm_service`."""
    channel = client_channel(llm_service.address)
    yield llm_pb2_grpc.LLMServiceStub(channel)
    await channel.close()
