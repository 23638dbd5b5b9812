"""Public gRPC AgentService: same operations, auth and errors as REST; health and reflection."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mnemo.common.grpcutil import check_health
from mnemo.v1 import agent_pb2, common_pb2, memory_pb2
from tests.fixtures_stack import Stack, module_stack  # noqa: F401


async def _create(stack: Stack, stub: Any, api_key: str | None = None) -> agent_pb2.Agent:
    return await stub.CreateAgent(memory_pb2.CreateAgentRequest(
        config=common_pb2.AgentConfig(name="grpc-agent"), persona="gP", human="gH"),
        metadata=stack.grpc_auth(api_key))


async def test_auth_is_required(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListAgents(memory_pb2.ListAgentsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListAgents(memory_pb2.ListAgentsRequest(), metadata=module_stack.grpc_auth("mk-wrong"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_agent_lifecycle_and_errors(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    agent = await _create(module_stack, stub)
    assert agent.id and agent.name == "grpc-agent"
    assert {b.label: b.value for b in agent.blocks} == {"persona": "gP", "human": "gH"}
    got = await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth)
    assert got.id == agent.id
    listed = await stub.ListAgents(memory_pb2.ListAgentsRequest(page_size=100), metadata=auth)
    assert agent.id in [a.id for a in listed.agents]
    updated = await stub.UpdateAgent(memory_pb2.UpdateAgentRequest(
        ref=common_pb2.AgentRef(agent_id=agent.id), config=common_pb2.AgentConfig(name="renamed"),
        update_mask=["name"]), metadata=auth)
    assert updated.name == "renamed"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateAgent(memory_pb2.UpdateAgentRequest(
            ref=common_pb2.AgentRef(agent_id=agent.id), update_mask=["tenant_id"]), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    block = await stub.UpdateMemoryBlock(agent_pb2.UpdateMemoryBlockRequest(
        agent_id=agent.id, label="human", value="Name: Grace"), metadata=auth)
    assert block.value == "Name: Grace"
    memory = await stub.GetMemory(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth)
    assert {b.label: b.value for b in memory.blocks}["human"] == "Name: Grace"
    inserted = await stub.InsertArchival(agent_pb2.PublicInsertArchivalRequest(
        agent_id=agent.id, passages=[memory_pb2.PassageInput(text="gRPC passage about comets")]), metadata=auth)
    hits = await stub.SearchArchival(agent_pb2.PublicSearchArchivalRequest(agent_id=agent.id, query="comets"),
                                     metadata=auth)
    assert [h.passage.id for h in hits.hits] == list(inserted.ids)
    await stub.DeleteArchival(agent_pb2.PublicDeleteArchivalRequest(agent_id=agent.id,
                                                                    passage_id=inserted.ids[0]), metadata=auth)
    imported = await stub.ImportRecall(agent_pb2.PublicImportRecallRequest(
        agent_id=agent.id, messages=[common_pb2.Message(role="user", text="hello recall")]), metadata=auth)
    assert imported.imported == 1

    await stub.DeleteAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_send_message_streams_the_turn_and_stream_events_resumes(module_stack: Stack,
                                                                       scripted_llm: Any) -> None:
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    agent = await _create(module_stack, stub)
    events = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(
        agent_id=agent.id, message="hello grpc"), metadata=auth)]
    assert events[-1].type == "turn_completed" and events[-1].turn_completed.stop_reason == "end_turn"
    replies = [e.assistant_message.text for e in events if e.type == "assistant_message"]
    assert replies == ["You said: hello grpc"]
    assert all(e.seq > 0 and e.turn_id == events[0].turn_id for e in events)

    # Idempotency: the same key streams the same turn again, without running it twice.
    key = "grpc-key-1"
    first = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(
        agent_id=agent.id, message="idem", idempotency_key=key), metadata=auth)]
    again = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(
        agent_id=agent.id, message="idem", idempotency_key=key), metadata=auth)]
    assert [e.seq for e in first] == [e.seq for e in again]

    resumed = [e async for e in stub.StreamEvents(agent_pb2.StreamEventsRequest(
        agent_id=agent.id, after_seq=events[0].seq, turn_id=events[0].turn_id), metadata=auth)]
    assert [e.seq for e in resumed] == [e.seq for e in events[1:]]


async def test_other_tenant_gets_not_found(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    agent = await _create(module_stack, stub)
    other = await module_stack.new_tenant()
    auth = module_stack.grpc_auth(other.api_key)
    calls = [
        stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth),
        stub.DeleteAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth),
        stub.GetMemory(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth),
        stub.UpdateMemoryBlock(agent_pb2.UpdateMemoryBlockRequest(agent_id=agent.id, label="human", value="x"),
                               metadata=auth),
        stub.SearchArchival(agent_pb2.PublicSearchArchivalRequest(agent_id=agent.id), metadata=auth),
        stub.CreateCheckpoint(agent_pb2.PublicCreateCheckpointRequest(agent_id=agent.id), metadata=auth),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.SendMessage(agent_pb2.SendMessageRequest(agent_id=agent.id, message="x"),
                                        metadata=auth):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    got = await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=module_stack.grpc_auth())
    assert got.name == "grpc-agent"


async def test_templates_over_grpc(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    put = await stub.PutTemplate(agent_pb2.PublicPutTemplateRequest(
        template=common_pb2.Template(kind="human", name="grace", text="Grace Hopper")), metadata=auth)
    assert put.name == "grace"
    listed = await stub.ListTemplates(agent_pb2.PublicListTemplatesRequest(kind="human"), metadata=auth)
    assert "grace" in [t.name for t in listed.templates]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTemplates(agent_pb2.PublicListTemplatesRequest(kind="robot"), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_and_reflection(module_stack: Stack) -> None:
    assert await check_health(module_stack.grpc_address, "mnemo.v1.AgentService")
    channel = grpc.aio.insecure_channel(module_stack.grpc_address)
    try:
        resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        names: list[str] = []
        async for reply in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
                list_services="")])):
            names = [s.name for s in reply.list_services_response.service]
        assert "mnemo.v1.AgentService" in names
    finally:
        await channel.close()


async def test_documents_checkpoints_export_import_over_grpc(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    agent = await _create(module_stack, stub)

    async def chunks() -> Any:
        yield agent_pb2.PublicDocumentChunk(header=agent_pb2.PublicDocumentHeader(
            agent_id=agent.id, filename="tides.txt", content_type="text/plain"))
        for i in range(3):
            yield agent_pb2.PublicDocumentChunk(data=f"Tide table line {i}: high water at noon.\n".encode())
    progress = [p async for p in stub.UploadDocument(chunks(), metadata=auth)]
    assert progress[-1].done and progress[-1].passages >= 1 and progress[-1].source_id

    checkpoint = await stub.CreateCheckpoint(agent_pb2.PublicCreateCheckpointRequest(agent_id=agent.id, name="c1"),
                                             metadata=auth)
    listed = await stub.ListCheckpoints(agent_pb2.GetAgentRequest(agent_id=agent.id), metadata=auth)
    assert checkpoint.id in [c.id for c in listed.checkpoints]
    await stub.UpdateMemoryBlock(agent_pb2.UpdateMemoryBlockRequest(agent_id=agent.id, label="human",
                                                                    value="changed"), metadata=auth)
    restored = await stub.RestoreCheckpoint(agent_pb2.PublicRestoreCheckpointRequest(
        agent_id=agent.id, checkpoint_id=checkpoint.id), metadata=auth)
    assert {b.label: b.value for b in restored.blocks}["human"] == "gH"

    data = b"".join([c.data async for c in stub.ExportAgent(agent_pb2.GetAgentRequest(agent_id=agent.id),
                                                             metadata=auth)])
    assert data

    async def export_chunks() -> Any:
        for i in range(0, len(data), 1000):
            yield memory_pb2.DataChunk(data=data[i:i + 1000])
    imported = await stub.ImportAgent(export_chunks(), metadata=auth)
    assert imported.id and imported.id != agent.id and imported.name == agent.name


async def test_queue_editing_over_grpc(module_stack: Stack, scripted_llm: Any) -> None:
    stub = module_stack.agent_stub()
    auth = module_stack.grpc_auth()
    agent = await _create(module_stack, stub)
    _ = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(agent_id=agent.id, message="hi"),
                                           metadata=auth)]
    rewritten = await stub.RewriteMessage(agent_pb2.PublicRewriteMessageRequest(agent_id=agent.id,
                                                                                text="Better reply"), metadata=auth)
    assert "Better reply" in str(rewritten)
    popped = await stub.PopMessages(agent_pb2.PublicPopMessagesRequest(agent_id=agent.id, count=1), metadata=auth)
    assert len(popped.removed) >= 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PopMessages(agent_pb2.PublicPopMessagesRequest(agent_id=agent.id, count=0), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_rejected_upload_reports_its_reason_while_the_client_is_still_writing(module_stack: Stack) -> None:
    """The server drains a rejected client stream before it ends the call: grpcio's asyncio client
    loses the status to "Internal error from Core" when a write races the end (grpc/grpc#36066)."""
    stub = module_stack.agent_stub()
    chunk = b"x" * (64 << 10)

    def without_header() -> Any:
        return iter([agent_pb2.PublicDocumentChunk(data=chunk) for _ in range(32)])

    def unknown_agent() -> Any:
        yield agent_pb2.PublicDocumentChunk(header=agent_pb2.PublicDocumentHeader(agent_id="agent-nowhere"))
        yield from (agent_pb2.PublicDocumentChunk(data=chunk) for _ in range(32))

    cases = [(without_header, module_stack.grpc_auth(), grpc.StatusCode.INVALID_ARGUMENT, "header"),
             (unknown_agent, module_stack.grpc_auth(), grpc.StatusCode.NOT_FOUND, "agent-nowhere"),
             (without_header, module_stack.grpc_auth("mk-wrong"), grpc.StatusCode.UNAUTHENTICATED, "key")]
    for requests, auth, code, reason in cases:
        for _ in range(10):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.UploadDocument(requests(), metadata=auth, timeout=30.0):
                    pass
            assert (err.value.code(), reason in (err.value.details() or "").lower()) == (code, True), \
                err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ImportAgent(iter([memory_pb2.DataChunk(data=b"not a bundle " * 5000) for _ in range(32)]),
                               metadata=module_stack.grpc_auth(), timeout=30.0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
