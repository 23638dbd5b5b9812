"""Fixtures of the memory service: `memory_service` (in-process, real NATS, real llm-proxy) and
`memory_stub` (a gRPC MemoryService client to it).

Usage in a test module:
    from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mnemo.common.config import Settings
from mnemo.common.grpcutil import client_channel
from mnemo.memory.server import MemoryService
from mnemo.v1 import memory_pb2_grpc
from tests.fixtures_llm import llm_service, rpc_group_of  # noqa: F401  (re-exported for test modules)


def memory_settings(nats_url: str, home: Path, **overrides: Any) -> Settings:
    """Settings for an in-process memory service on a free port with its data under `home`."""
    return Settings(nats_url=nats_url, home=home, memory_port=0, **overrides)


def llm_target_of(llm: Any) -> str:
    return llm if isinstance(llm, str) else llm.address


@pytest.fixture
async def memory_service(nats_url: str, llm_service: Any, tmp_path: Path) -> AsyncIterator[MemoryService]:
    """A running MemoryService (embedded search index under tmp_path) on the session nats-server."""
    service = MemoryService(memory_settings(nats_url, tmp_path / "memory-home",
                                            rpc_group=rpc_group_of(llm_service)),
                            llm_target=llm_target_of(llm_service))
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def memory_stub(memory_service: MemoryService) -> AsyncIterator[memory_pb2_grpc.MemoryServiceStub]:
    """A gRPC client of `memory_service`."""
    channel = client_channel(memory_service.address)
    yield memory_pb2_grpc.MemoryServiceStub(channel)
    await channel.close()
