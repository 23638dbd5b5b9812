"""Shared blocks, archival hygiene and consolidation requests through the public surfaces over the
real stack: REST, gRPC (same behaviour, same errors) and the Python client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from mnemo.client import AsyncMnemo, ConflictError, NotFoundError
from mnemo.v1 import agent_pb2, memory_pb2
from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.helpers import eventually


async def _agent(stack: Stack, name: str, **body: Any) -> str:
    return (await stack.create_agent(name=name, persona="P.", human=f"own notes of {name}", **body))["id"]


async def test_rest_shared_block_lifecycle(module_stack: Stack) -> None:
    ann, bob = await _agent(module_stack, "ann"), await _agent(module_stack, "bob")
    async with module_stack.http() as http:
        r = await http.post("/v1/blocks", json={"label": "bad label", "value": "x"})
        assert r.status_code == 422
        r = await http.post("/v1/blocks", json={"label": "project", "value": "Kestrel ships in May.", "limit": 100})
        assert r.status_code == 201, r.text
        block = r.json()
        assert block["id"].startswith("block-") and "tenant_id" not in block and "recent_edits" not in block
        for agent in (ann, bob):
            r = await http.post(f"/v1/agents/{agent}/blocks/{block['id']}")
            assert r.status_code == 200 and r.json()["replaced"] is False, r.text
        project = next(b for b in (await http.get(f"/v1/agents/{ann}")).json()["blocks"] if b["label"] == "project")
        assert project["shared_id"] == block["id"] and project["shared_with"] == ["bob"]
        # an edit through one agent's core memory is the block's
        r = await http.put(f"/v1/agents/{ann}/memory/project", json={"value": "Kestrel ships in June."})
        assert r.status_code == 200 and r.json()["shared_id"] == block["id"], r.text
        assert (await http.get(f"/v1/agents/{bob}/memory/project")).json()["value"] == "Kestrel ships in June."
        r = await http.patch(f"/v1/blocks/{block['id']}", json={"value": "x" * 101})
        assert r.status_code == 409 and "limit is 100" in r.text
        r = await http.patch(f"/v1/blocks/{block['id']}", json={"limit": 300})
        assert r.status_code == 200 and r.json()["limit"] == 300 and r.json()["value"] == "Kestrel ships in June."
        r = await http.get(f"/v1/blocks/{block['id']}/agents")
        assert sorted(a["name"] for a in r.json()["agents"]) == ["ann", "bob"]
        assert block["id"] in [b["id"] for b in (await http.get("/v1/blocks")).json()["blocks"]]
        # attaching over the agent's own block of that label: kept in a checkpoint first
        r = await http.post("/v1/blocks", json={"label": "human", "value": "The household."})
        household = r.json()["id"]
        r = await http.post(f"/v1/agents/{ann}/blocks/{household}")
        assert r.json()["replaced"] is True and r.json()["checkpoint_id"], r.text
        checkpoints = (await http.get(f"/v1/agents/{ann}/checkpoints")).json()["checkpoints"]
        assert r.json()["checkpoint_id"] in [c["id"] for c in checkpoints]
        assert (await http.get(f"/v1/agents/{ann}/memory/human")).json()["value"] == "The household."
        r = await http.delete(f"/v1/blocks/{block['id']}")
        assert r.status_code == 409 and "detach it first" in r.text
        for agent in (ann, bob):
            assert (await http.delete(f"/v1/agents/{agent}/blocks/{block['id']}")).status_code == 204
        assert (await http.delete(f"/v1/agents/{ann}/blocks/{block['id']}")).status_code == 404
        assert (await http.delete(f"/v1/blocks/{block['id']}")).status_code == 204
        assert (await http.get(f"/v1/blocks/{block['id']}")).status_code == 404
        assert (await http.get("/v1/blocks/not a block")).status_code == 404


async def test_grpc_shared_blocks_same_behaviour_and_errors(module_stack: Stack) -> None:
    stub, auth = module_stack.agent_stub(), module_stack.grpc_auth()
    ann = await _agent(module_stack, "ann")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateBlock(agent_pb2.PublicCreateBlockRequest(label="no spaces", value="x"), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "label" in err.value.details()
    block = await stub.CreateBlock(agent_pb2.PublicCreateBlockRequest(label="project", value="v", limit=50),
                                   metadata=auth)
    assert block.id and not block.tenant_id
    attached = await stub.AttachBlock(agent_pb2.PublicAttachBlockRequest(agent_id=ann, block_id=block.id),
                                      metadata=auth)
    assert attached.block.id == block.id and not attached.replaced
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateBlock(agent_pb2.PublicUpdateBlockRequest(block_id=block.id, value="y" * 51), metadata=auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    updated = await stub.UpdateBlock(agent_pb2.PublicUpdateBlockRequest(block_id=block.id, value="new"),
                                     metadata=auth)
    assert updated.value == "new" and updated.limit == 50
    memory = await stub.GetMemory(agent_pb2.GetAgentRequest(agent_id=ann), metadata=auth)
    assert next(b.value for b in memory.blocks if b.label == "project") == "new"
    agents = await stub.ListBlockAgents(agent_pb2.PublicBlockRef(block_id=block.id), metadata=auth)
    assert [a.agent_id for a in agents.agents] == [ann]
    listed = await stub.ListBlocks(agent_pb2.PublicListBlocksRequest(), metadata=auth)
    assert block.id in [b.id for b in listed.blocks]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteBlock(agent_pb2.PublicBlockRef(block_id=block.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.DetachBlock(agent_pb2.PublicAttachBlockRequest(agent_id=ann, block_id=block.id), metadata=auth)
    await stub.DeleteBlock(agent_pb2.PublicBlockRef(block_id=block.id), metadata=auth)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetBlock(agent_pb2.PublicBlockRef(block_id=block.id), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_rest_and_grpc_archival_dedup_expiry_and_bulk_delete(module_stack: Stack) -> None:
    agent = await _agent(module_stack, "archivist")
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent}/archival", json={"passages": [
            {"text": "Room 1207 at the Grand.", "tags": ["trip"]}, {"text": "room 1207 at the grand"},
            {"text": "Gate closes at nine.", "expires_at": past}, {"text": "Parking on level 3.", "ttl_seconds": 600,
                                                                   "tags": ["trip"]}]})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["duplicate"] == [False, True, False, False] and body["ids"][1] == body["ids"][0]
        assert (body["inserted"], body["deduplicated"], body["expiring"]) == (3, 1, 2)
        r = await http.post(f"/v1/agents/{agent}/archival", json={"text": "Room 1207 at the Grand.", "dedup": "off"})
        assert r.json()["duplicate"] == [False]
        listed = (await http.get(f"/v1/agents/{agent}/archival", params={"page_size": 50})).json()
        texts = sorted(h["passage"]["text"] for h in listed["hits"])
        assert texts == ["Parking on level 3.", "Room 1207 at the Grand.", "Room 1207 at the Grand."]
        parking = next(h["passage"] for h in listed["hits"] if h["passage"]["text"].startswith("Parking"))
        assert parking["expires_at"]
        r = await http.post(f"/v1/agents/{agent}/archival", json={"text": "x", "ttl_seconds": 0})
        assert r.status_code == 422
        r = await http.delete(f"/v1/agents/{agent}/archival")
        assert r.status_code == 400 and "at least one filter" in r.text
        r = await http.delete(f"/v1/agents/{agent}/archival", params={"start": "next tuesday"})
        assert r.status_code == 400
        r = await http.delete(f"/v1/agents/{agent}/archival", params={"tags": ["trip"]})
        assert r.status_code == 200 and r.json() == {"deleted": 2}
    stub, auth = module_stack.agent_stub(), module_stack.grpc_auth()
    resp = await stub.InsertArchival(agent_pb2.PublicInsertArchivalRequest(agent_id=agent, passages=[
        memory_pb2.PassageInput(text="Room 1207 at the Grand.")]), metadata=auth)
    assert list(resp.duplicate) == [True] and resp.deduplicated == 1
    today = datetime.now(UTC).date().isoformat()
    deleted = await stub.BulkDeleteArchival(agent_pb2.PublicBulkDeleteArchivalRequest(
        agent_id=agent, start=today, end=today), metadata=auth)
    assert deleted.deleted == 2   # the one left, and the expired one the purge had not deleted yet
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BulkDeleteArchival(agent_pb2.PublicBulkDeleteArchivalRequest(agent_id=agent), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_python_client_blocks_hygiene_and_consolidation(module_stack: Stack, scripted_llm: Any) -> None:
    async with AsyncMnemo(base_url=module_stack.base_url, api_key=module_stack.api_key) as client:
        agent = await client.agents.create(name="sam", persona="P.", human="Lives in Oslo.\nLives in Oslo.")
        block = await client.blocks.create("project", "Shared notes.", limit=500)
        attached = await client.agents.attach_block(agent.id, block.id)
        assert attached.block.id == block.id and not attached.replaced
        assert (await client.agents.get(agent.id)).block("project").shared_id == block.id
        assert [a.agent_id for a in await client.blocks.agents(block.id)] == [agent.id]
        updated = await client.blocks.update(block.id, value="Shared notes, edited.")
        assert (await client.agents.get_block(agent.id, "project")).value == updated.value
        assert block.id in [b.id for b in await client.blocks.list()]
        with pytest.raises(ConflictError):
            await client.blocks.delete(block.id)
        await client.agents.detach_block(agent.id, block.id)
        await client.blocks.delete(block.id)
        with pytest.raises(NotFoundError):
            await client.blocks.get(block.id)

        result = await client.agents.insert_passages(agent.id, [{"text": "Biscuit is a beagle."},
                                                                {"text": "biscuit is a beagle", "tags": ["dog"]}])
        assert (result.inserted, result.deduplicated, result.ids[0] == result.ids[1]) == (1, 1, True)
        ids = await client.agents.insert_archival(agent.id, "Biscuit is a beagle.", dedup=False, ttl_seconds=60)
        assert ids[0] != result.ids[0]
        assert await client.agents.delete_archival_where(agent.id, ids=ids) == 1

        with pytest.raises(ConflictError):   # not enabled for this agent
            await client.agents.consolidate(agent.id)
        agent = await client.agents.update(agent.id, consolidation={"enabled": True, "after_turns": 50})
        assert agent.consolidation["enabled"] is True and agent.consolidation["after_turns"] == 50
        await client.agents.consolidate(agent.id)

        async def consolidated() -> bool:
            events = [e async for e in client.agents.events(agent.id)]
            return any(e.type == "memory_consolidated" for e in events)
        await eventually(consolidated, timeout=60, message="the requested consolidation's event")
        events = [e async for e in client.agents.events(agent.id)]
        event = next(e for e in events if e.type == "memory_consolidated")
        assert event.reason == "requested"
        status = (await client.agents.get(agent.id)).consolidation_status
        assert status["runs"] == 1 and status["last_at"]
