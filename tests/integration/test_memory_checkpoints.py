"""Checkpoints, export / import, and commit-log recovery after a crash between CAS write and publish."""

from __future__ import annotations

import json

import grpc
import pytest

from mnemo.common import subjects
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.helpers import eventually

Ref = common_pb2.AgentRef


async def _recall_total(stub, ref: Ref) -> int:  # type: ignore[no-untyped-def]
    return (await stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref))).total


async def test_checkpoint_restore(memory_stub):
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="ck", human="Name: Ana"))
    ref = Ref(tenant_id="ck", agent_id=state.config.id)
    r1 = await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="a:1",
        messages=[common_pb2.Message(role="user", text="first")], summary_changed=True, summary="s1"))
    cp = await memory_stub.CreateCheckpoint(memory_pb2.CreateCheckpointRequest(ref=ref, name="before"))
    assert cp.id.startswith("ckpt-") and cp.name == "before" and cp.revision == r1.revision
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=r1.revision, step_id="a:2",
        messages=[common_pb2.Message(role="user", text="second")], summary_changed=True, summary="s2",
        blocks=[common_pb2.MemoryBlock(label="human", value="Name: Bea")]))
    await memory_stub.UpdateAgent(memory_pb2.UpdateAgentRequest(
        ref=ref, config=common_pb2.AgentConfig(name="changed"), update_mask=["name"]))
    cp2 = await memory_stub.CreateCheckpoint(memory_pb2.CreateCheckpointRequest(ref=ref))
    listed = await memory_stub.ListCheckpoints(ref)
    assert [c.id for c in listed.checkpoints] == [cp2.id, cp.id]

    before = await memory_stub.GetContext(ref)
    restored = await memory_stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(ref=ref, checkpoint_id=cp.id))
    assert restored.revision > before.revision  # moves forward
    assert [m.text for m in restored.queue] == ["first"] and restored.summary == "s1"
    assert {b.label: b.value for b in restored.blocks}["human"] == "Name: Ana"
    assert restored.config.name == state.config.name
    # Recall is not rolled back.
    await eventually(lambda: _is(memory_stub, ref, 2), timeout=30, message="both messages in recall")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(ref=ref, checkpoint_id="ckpt-nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    foreign = Ref(tenant_id="other", agent_id=ref.agent_id)
    for call in (memory_stub.ListCheckpoints(foreign),
                 memory_stub.CreateCheckpoint(memory_pb2.CreateCheckpointRequest(ref=foreign)),
                 memory_stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(ref=foreign, checkpoint_id=cp.id))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    await memory_stub.DeleteAgent(ref)
    again = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(
        tenant_id="ck", config=common_pb2.AgentConfig(id=ref.agent_id)))
    assert again.config.id == ref.agent_id
    assert not (await memory_stub.ListCheckpoints(ref)).checkpoints  # deleted with the agent


async def _is(stub, ref: Ref, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await _recall_total(stub, ref) == n


async def test_export_import_round_trip(memory_stub):
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(
        tenant_id="ex", persona="I am Ziggy.", config=common_pb2.AgentConfig(name="ziggy")))
    ref = Ref(tenant_id="ex", agent_id=state.config.id)
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="x:1",
        messages=[common_pb2.Message(role="user", text="my dog is called Pixel"),
                  common_pb2.Message(role="assistant", text="what a name")]))
    await memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=[
        common_pb2.Message(role="user", text="old chat about sailing", created_at="2023-06-01T12:00:00Z")]))
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="Pixel is a border collie", tags=["pets"])]))
    await eventually(lambda: _is(memory_stub, ref, 3), timeout=30, message="recall indexed")

    data = b"".join([c.data async for c in memory_stub.ExportAgent(ref)])
    doc = json.loads(data)
    assert doc["format"] == "mnemo-agent/1" and doc["state"]["config"]["name"] == "ziggy"
    assert len(doc["recall"]) == 3 and len(doc["archival"]) == 1

    async def chunks():  # type: ignore[no-untyped-def]
        yield memory_pb2.ImportChunk(tenant_id="ex2", data=data[:100])
        for i in range(100, len(data), 500):
            yield memory_pb2.ImportChunk(data=data[i:i + 500])
    imported = await memory_stub.ImportAgent(chunks())
    new_ref = Ref(tenant_id="ex2", agent_id=imported.config.id)
    assert imported.config.id != ref.agent_id and imported.config.tenant_id == "ex2"
    assert imported.config.name == "ziggy" and imported.blocks[0].value == "I am Ziggy."
    assert [m.text for m in imported.queue] == ["my dog is called Pixel", "what a name"]
    await eventually(lambda: _is(memory_stub, new_ref, 3), timeout=30, message="imported recall indexed")
    found = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=new_ref, query="sailing"))
    assert found.hits[0].message.created_at.startswith("2023-06-01")
    arch = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=new_ref, query="border collie"))
    assert arch.total == 1 and arch.hits[0].passage.tags == ["pets"]
    # The original is untouched.
    assert (await memory_stub.GetCounts(ref)).archival == 1

    async def garbage():  # type: ignore[no-untyped-def]
        yield memory_pb2.ImportChunk(tenant_id="ex2", data=b'{"format": "other"}')
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.ImportAgent(garbage())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [c async for c in memory_stub.ExportAgent(Ref(tenant_id="ex2", agent_id=ref.agent_id))]
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_commit_outbox_is_republished_after_a_crash(memory_stub, memory_service, nc):
    """A process that wrote the CAS but died before publishing: the next access publishes the messages."""
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="crash"))
    ref = Ref(tenant_id="crash", agent_id=state.config.id)
    # What a crashed CommitStep leaves behind: the state written, with its outbox, nothing published.
    stored = await memory_service.store.get("crash", state.config.id)
    lost = common_pb2.Message(id="msg-lost-1", role="user", text="written but never published",
                              created_at="2024-02-02T00:00:00Z")
    stored.queue.append(lost)
    stored.commit_outbox.append(lost)
    stored.last_step_id = "c:1"
    await memory_service.store.put(stored, stored.revision)
    subject = subjects.messages_subject("crash", state.config.id)
    info = await nc.jetstream().stream_info(subjects.MESSAGES_STREAM, subjects_filter=subject)
    assert not (info.state.subjects or {})

    ctx = await memory_stub.GetContext(ref)  # any access of the agent repairs the log
    assert not ctx.commit_outbox
    await eventually(lambda: _is(memory_stub, ref, 1), timeout=30, message="lost message indexed")
    # A second access does not duplicate it in the log.
    await memory_stub.GetContext(ref)
    info = await nc.jetstream().stream_info(subjects.MESSAGES_STREAM, subjects_filter=subject)
    assert info.state.subjects == {subject: 1}
