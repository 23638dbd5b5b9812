"""The memory service end to end on each search backend (embedded; Elasticsearch via noida-db or
MNEMO_TEST_ES_URL): commit → recall indexed, archival read-your-writes, delete removes everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mnemo.common.grpcutil import client_channel
from mnemo.memory.server import MemoryService
from mnemo.v1 import common_pb2, memory_pb2, memory_pb2_grpc
from tests.fixtures_memory import llm_service, llm_target_of, memory_settings  # noqa: F401
from tests.fixtures_search import es_linear_url, es_url, search_backend  # noqa: F401
from tests.helpers import eventually


@pytest.fixture
async def stub_on_backend(nats_url: str, llm_service: Any, search_backend: Any,
                          tmp_path: Path) -> AsyncIterator[memory_pb2_grpc.MemoryServiceStub]:
    service = MemoryService(memory_settings(nats_url, tmp_path / "home"), backend=search_backend,
                            llm_target=llm_target_of(llm_service))
    await service.start()
    channel = client_channel(service.address)
    yield memory_pb2_grpc.MemoryServiceStub(channel)
    await channel.close()
    await service.stop()


async def test_memory_service_on_backend(stub_on_backend):
    stub = stub_on_backend
    state = await stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="be"))
    ref = common_pb2.AgentRef(tenant_id="be", agent_id=state.config.id)
    await stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="b:1",
        messages=[common_pb2.Message(role="user", text="we adopted a beagle named Biscuit"),
                  common_pb2.Message(role="assistant", text="lovely")]))

    async def indexed() -> bool:
        return (await stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref))).total == 2
    await eventually(indexed, timeout=30, message="recall indexed")
    found = await stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="what is my dog called", role="user"))
    assert found.hits[0].message.text == "we adopted a beagle named Biscuit"

    await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="Biscuit likes carrots", tags=["dog"])]))
    hit = await stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="carrots"))
    assert hit.total == 1 and hit.hits[0].passage.tags == ["dog"]

    await stub.DeleteAgent(ref)
    again = await stub.CreateAgent(memory_pb2.CreateAgentRequest(
        tenant_id="be", config=common_pb2.AgentConfig(id=ref.agent_id)))
    assert again.config.id == ref.agent_id
    counts = await stub.GetCounts(ref)
    assert counts.recall == 0 and counts.archival == 0
