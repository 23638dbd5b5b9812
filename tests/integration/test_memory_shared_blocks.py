"""Shared blocks in the memory service: create, attach (replacing a label after a checkpoint), edits
seen by every attached agent, concurrent edits that lose nothing, the limit for every writer, edit
ids applied once, detach, delete, restore and export / import, tenants kept apart."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import pytest

from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401


def _tenant() -> str:
    return f"sb{uuid.uuid4().hex[:8]}"


async def _agent(stub: Any, tenant: str, name: str, **kw: Any) -> common_pb2.AgentRef:
    state = await stub.CreateAgent(memory_pb2.CreateAgentRequest(
        tenant_id=tenant, config=common_pb2.AgentConfig(name=name), persona="P", human=f"own human of {name}", **kw))
    return common_pb2.AgentRef(tenant_id=tenant, agent_id=state.config.id)


def _bref(tenant: str, block_id: str) -> memory_pb2.SharedBlockRef:
    return memory_pb2.SharedBlockRef(tenant_id=tenant, block_id=block_id)


def _block(state: Any, label: str) -> common_pb2.MemoryBlock:
    return next(b for b in state.blocks if b.label == label)


async def test_attach_edit_detach_and_delete(memory_stub: Any) -> None:
    stub, tenant = memory_stub, _tenant()
    ann = await _agent(stub, tenant, "ann")
    bob = await _agent(stub, tenant, "bob")
    rec = await stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(
        tenant_id=tenant, label="project", value="Project Kestrel ships in May.", limit=200))
    assert rec.id.startswith("block-") and rec.limit == 200
    for ref in (ann, bob):
        out = await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ref, block_id=rec.id))
        assert not out.replaced and out.checkpoint_id == ""
    again = await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    assert not again.replaced   # attaching twice changes nothing
    ctx = await stub.GetContext(ann)
    project = _block(ctx, "project")
    assert (project.shared_id, project.value, project.limit, list(project.shared_with)) == (
        rec.id, "Project Kestrel ships in May.", 200, ["bob"])
    # a user edit through ann's core memory is the block's: bob sees it
    await stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ann, label="project", op="append", value="Ana leads QA."))
    assert _block(await stub.GetContext(bob), "project").value == "Project Kestrel ships in May.\nAna leads QA."
    core = await stub.GetCoreMemory(bob)
    assert _block(core, "project").value.endswith("Ana leads QA.")
    # the limit holds for every writer
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(ref=_bref(tenant, rec.id), op="append",
                                                                         value="x" * 200))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "limit is 200" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=bob, label="project", value="y" * 201))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # a step cannot carry a shared block's value
    state = await stub.GetContext(bob)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=bob, expected_revision=state.revision, step_id="t:1",
            blocks=[common_pb2.MemoryBlock(label="project", value="overwritten")]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await stub.ListSharedBlockAgents(_bref(tenant, rec.id))
    assert sorted(a.name for a in listed.agents) == ["ann", "bob"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteSharedBlock(_bref(tenant, rec.id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "detach it first" in err.value.details()
    await stub.DetachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    assert "project" not in [b.label for b in (await stub.GetContext(ann)).blocks]
    assert [a.name for a in (await stub.ListSharedBlockAgents(_bref(tenant, rec.id))).agents] == ["bob"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DetachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.DeleteAgent(bob)   # a deleted agent leaves the block's index
    assert list((await stub.ListSharedBlockAgents(_bref(tenant, rec.id))).agents) == []
    await stub.DeleteSharedBlock(_bref(tenant, rec.id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetSharedBlock(_bref(tenant, rec.id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_attach_over_an_own_block_keeps_it_in_a_checkpoint(memory_stub: Any) -> None:
    stub, tenant = memory_stub, _tenant()
    ann = await _agent(stub, tenant, "ann")
    rec = await stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(
        tenant_id=tenant, label="human", value="The household: Ana and Joe."))
    out = await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    assert out.replaced and out.checkpoint_id
    assert _block(await stub.GetContext(ann), "human").value == "The household: Ana and Joe."
    restored = await stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(ref=ann,
                                                                               checkpoint_id=out.checkpoint_id))
    human = _block(restored, "human")
    assert (human.value, human.shared_id) == ("own human of ann", "")
    assert list((await stub.ListSharedBlockAgents(_bref(tenant, rec.id))).agents) == []   # detached by the restore
    # a checkpoint with the block attached re-links it
    await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    cp = await stub.CreateCheckpoint(memory_pb2.CreateCheckpointRequest(ref=ann, name="with the block"))
    await stub.DetachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    restored = await stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(ref=ann, checkpoint_id=cp.id))
    assert _block(restored, "human").shared_id == rec.id
    assert _block(restored, "human").value == "The household: Ana and Joe."
    assert [a.agent_id for a in (await stub.ListSharedBlockAgents(_bref(tenant, rec.id))).agents] == [ann.agent_id]


async def test_concurrent_edits_from_many_writers_lose_nothing(memory_stub: Any, memory_service: Any) -> None:
    stub, tenant = memory_stub, _tenant()
    agents = [await _agent(stub, tenant, f"agent{i}") for i in range(4)]
    rec = await stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(tenant_id=tenant, label="log",
                                                                         limit=20_000))
    for ref in agents:
        await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ref, block_id=rec.id))

    async def writer(i: int) -> None:
        for j in range(10):
            await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(
                ref=_bref(tenant, rec.id), op="append", value=f"line {i}-{j}", agent_id=agents[i % 4].agent_id,
                edit_id=f"{agents[i % 4].agent_id}/turn-{i}:{j}:0"))

    async def user(k: int) -> None:
        for j in range(5):
            await stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=agents[k], label="log", op="append",
                                                                 value=f"user {k}-{j}"))

    await asyncio.gather(*(writer(i) for i in range(8)), user(0), user(3))
    value = (await stub.GetSharedBlock(_bref(tenant, rec.id))).value
    lines = value.split("\n")
    expected = {f"line {i}-{j}" for i in range(8) for j in range(10)} | {f"user {k}-{j}" for k in (0, 3)
                                                                          for j in range(5)}
    assert sorted(lines) == sorted(expected)
    # an edit id seen already is not applied again (a step redone after a lost commit)
    again = await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(
        ref=_bref(tenant, rec.id), op="append", value="line 7-9", agent_id=agents[3].agent_id,
        edit_id=f"{agents[3].agent_id}/turn-7:9:0"))
    assert again.value == value
    for ref in agents:
        assert _block(await stub.GetContext(ref), "log").value == value
    # replace of text another writer removed: the writer is told to read it again
    await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(ref=_bref(tenant, rec.id), op="replace",
                                                                     old="line 0-0", value="line zero"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(ref=_bref(tenant, rec.id), op="replace",
                                                                         old="line 0-0", value="again"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "read it again" in err.value.details()


async def test_tenants_never_reach_each_others_blocks(memory_stub: Any) -> None:
    stub = memory_stub
    a, b = _tenant(), _tenant()
    rec = await stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(tenant_id=a, label="secret",
                                                                         value="SECRET-A"))
    b_agent = await _agent(stub, b, "intruder")
    calls = [
        stub.GetSharedBlock(_bref(b, rec.id)),
        stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=b_agent, block_id=rec.id)),
        stub.ListSharedBlockAgents(_bref(b, rec.id)),
        stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(ref=_bref(b, rec.id), value="pwned")),
        stub.DeleteSharedBlock(_bref(b, rec.id)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "SECRET" not in (err.value.details() or "")
    assert [x.id for x in (await stub.ListSharedBlocks(memory_pb2.ListSharedBlocksRequest(tenant_id=b))).blocks] == []
    assert (await stub.GetSharedBlock(_bref(a, rec.id))).value == "SECRET-A"


async def _export(stub: Any, ref: common_pb2.AgentRef) -> bytes:
    return b"".join([c.data async for c in stub.ExportAgent(ref)])


async def _import(stub: Any, tenant: str, data: bytes) -> Any:
    async def chunks():  # type: ignore[no-untyped-def]
        yield memory_pb2.ImportChunk(tenant_id=tenant, data=data)
    return await stub.ImportAgent(chunks())


async def test_export_import_relinks_in_the_tenant_and_copies_elsewhere(memory_stub: Any) -> None:
    stub, tenant, other = memory_stub, _tenant(), _tenant()
    ann = await _agent(stub, tenant, "ann")
    rec = await stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(tenant_id=tenant, label="project",
                                                                         value="Shared plans."))
    await stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(ref=ann, block_id=rec.id))
    data = await _export(stub, ann)
    exported = json.loads(data)
    project = next(b for b in exported["state"]["blocks"] if b["label"] == "project")
    assert project["shared_id"] == rec.id and project["value"] == "Shared plans."
    twin = await _import(stub, tenant, data)
    assert _block(twin, "project").shared_id == rec.id
    twin_ref = common_pb2.AgentRef(tenant_id=tenant, agent_id=twin.config.id)
    assert _block(await stub.GetContext(twin_ref), "project").value == "Shared plans."
    assert len((await stub.ListSharedBlockAgents(_bref(tenant, rec.id))).agents) == 2
    copy = await _import(stub, other, data)   # another tenant gets its own copy of the value
    copied = _block(copy, "project")
    assert (copied.shared_id, copied.value) == ("", "Shared plans.")
    await stub.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(ref=_bref(tenant, rec.id), value="Changed."))
    copy_ref = common_pb2.AgentRef(tenant_id=other, agent_id=copy.config.id)
    assert _block(await stub.GetContext(copy_ref), "project").value == "Shared plans."
    assert _block(await stub.GetContext(twin_ref), "project").value == "Changed."
