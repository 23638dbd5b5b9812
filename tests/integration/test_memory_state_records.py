"""Agent states in the agents bucket as step records (memory/state_records.py): a step writes only the
messages it appended on top of the record before it, and any reader, with or without a cached state,
rebuilds exactly the state the writer holds."""

from __future__ import annotations

from typing import Any

import pytest

from mnemo.common import subjects
from mnemo.common.errors import Internal
from mnemo.common.natsutil import connect, ensure_jetstream, leader_view
from mnemo.memory import state_records
from mnemo.memory.recall import AgentModels
from mnemo.memory.store import AgentStore, StateCache
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.helpers import eventually

TENANT = "records"


def msg(role: str, text: str) -> common_pb2.Message:
    return common_pb2.Message(role=role, text=text)


async def _agent(memory_stub: Any) -> common_pb2.AgentState:
    return await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id=TENANT))


async def _step(memory_stub: Any, agent_id: str, revision: int, n: int, evict: list[str] | None = None) -> int:
    ref = common_pb2.AgentRef(tenant_id=TENANT, agent_id=agent_id)
    resp = await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=revision, step_id=f"s:{n}",
        messages=[msg("user", f"question {n} " + "q" * 200), msg("assistant", f"answer {n} " + "a" * 200)],
        turn=common_pb2.TurnProgress(turn_id=f"turn-{n}", steps_done=1, completed=True),
        evict_message_ids=evict or []))
    return resp.revision


async def _agent_after(memory_stub: Any, steps: int) -> tuple[str, int]:
    """A new agent after `steps` steps: its id and revision."""
    created = await _agent(memory_stub)
    agent_id, revision = created.config.id, created.revision
    for n in range(steps):
        revision = await _step(memory_stub, agent_id, revision, n)
    return agent_id, revision


async def _reader(nc: Any, watch: bool = False) -> AgentStore:
    """Another replica's store: its own cache, nothing read yet."""
    js = nc.jetstream()
    kv = await js.key_value(subjects.KV_AGENTS)
    store = AgentStore(kv, StateCache(), max_depth=state_records.max_depth((await kv.status()).history),
                       consistent=leader_view(js, subjects.KV_AGENTS))
    if watch:
        await store.cache.watch(js, subjects.KV_AGENTS)
    return store


async def _raw(nc: Any, agent_id: str, revision: int | None = None) -> tuple[int, bytes]:
    kv = await nc.jetstream().key_value(subjects.KV_AGENTS)
    entry = await kv.get(subjects.agent_key(TENANT, agent_id), revision=revision)
    assert entry.value is not None and entry.revision is not None
    return entry.revision, entry.value


async def test_a_step_writes_only_its_messages_and_a_fresh_reader_rebuilds_the_state(
        memory_service, memory_stub, nc) -> None:
    created = await _agent(memory_stub)
    agent_id, revision = created.config.id, created.revision
    head_steps = memory_service.store.head_steps
    for n in range(state_records.max_depth(state_records.HISTORY)):
        before = revision
        revision = await _step(memory_stub, agent_id, revision, n)
        stored_revision, data = await _raw(nc, agent_id)
        record = common_pb2.AgentState.FromString(data)
        assert stored_revision == revision
        assert record.stored_base == before and record.stored_depth == n + 1
        assert [m.text.split()[:2] for m in record.queue] == [["question", str(n)], ["answer", str(n)]]

        held = await memory_service.store.get(TENANT, agent_id)
        fresh = await (await _reader(nc)).get(TENANT, agent_id)
        assert fresh.revision == held.revision == revision
        assert fresh.SerializeToString() == held.SerializeToString()
        assert not fresh.stored_base and not fresh.stored_depth
        assert len(fresh.queue) == 2 * (n + 1)
    # The last step's record is a small part of the state it stands for.
    assert len(data) * 2 < len(held.SerializeToString())
    # Every step read only the state around the queue (the cache knows where the bytes CreateAgent
    # wrote hold it).
    assert memory_service.store.head_steps - head_steps == state_records.max_depth(state_records.HISTORY)


async def test_chains_stay_within_the_buckets_history(memory_service, memory_stub, nc) -> None:
    created = await _agent(memory_stub)
    agent_id, revision = created.config.id, created.revision
    depths = []
    for n in range(2 * state_records.HISTORY + 3):
        revision = await _step(memory_stub, agent_id, revision, n)
        depths.append(common_pb2.AgentState.FromString((await _raw(nc, agent_id))[1]).stored_depth)
    top = state_records.max_depth(state_records.HISTORY)
    assert max(depths) == top and depths.count(0) == len(depths) // (top + 1)   # a whole one every top + 1
    # Every record of the newest chain is still in the bucket, down to a whole one.
    record = common_pb2.AgentState.FromString((await _raw(nc, agent_id))[1])
    hops = 0
    while record.stored_base:
        record = common_pb2.AgentState.FromString((await _raw(nc, agent_id, record.stored_base))[1])
        hops += 1
    assert hops <= top and len(record.queue) > 0
    fresh = await (await _reader(nc)).get(TENANT, agent_id)
    assert len(fresh.queue) == 2 * len(depths)
    assert [m.text.split()[1] for m in fresh.queue[::2]] == [str(n) for n in range(len(depths))]


async def test_an_eviction_writes_the_whole_state(memory_service, memory_stub, nc) -> None:
    created = await _agent(memory_stub)
    agent_id = created.config.id
    revision = await _step(memory_stub, agent_id, created.revision, 0)
    revision = await _step(memory_stub, agent_id, revision, 1)
    oldest = (await memory_service.store.get(TENANT, agent_id)).queue[0].id
    revision = await _step(memory_stub, agent_id, revision, 2, evict=[oldest])
    record = common_pb2.AgentState.FromString((await _raw(nc, agent_id))[1])
    assert not record.stored_base and len(record.queue) == 5
    assert oldest not in {m.id for m in record.queue}
    fresh = await (await _reader(nc)).get(TENANT, agent_id)
    assert fresh.revision == revision and [m.id for m in fresh.queue] == [m.id for m in record.queue]


class _CountingKV:
    """The bucket, counting the reads of records."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self.reads = 0

    async def get(self, key: str, revision: int | None = None) -> Any:
        self.reads += 1
        return await self._kv.get(key, revision=revision)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


async def test_a_replica_holding_an_older_state_reads_only_the_records_after_it(
        memory_service, memory_stub, nc) -> None:
    agent_id, revision = await _agent_after(memory_stub, 4)
    replica = await _reader(nc, watch=True)
    counting = _CountingKV(replica.reads)
    replica.reads = counting  # type: ignore[assignment]
    try:
        held = await replica.get(TENANT, agent_id)   # rebuilt down to the whole record: 5 reads
        assert counting.reads == 5 and held.revision == revision
        for n in range(4, 7):
            revision = await _step(memory_stub, agent_id, revision, n)
        key = subjects.agent_key(TENANT, agent_id)
        await eventually(lambda: replica.cache.get(key) is None, timeout=10,
                         message="the replica's cache did not hear of the writes")
        counting.reads = 0
        state = await replica.get(TENANT, agent_id)
        assert counting.reads == 3   # the three newest records, then the state it held
        writer = await memory_service.store.get(TENANT, agent_id)
        assert state.revision == revision and state.SerializeToString() == writer.SerializeToString()
    finally:
        await replica.cache.close()


async def test_a_broken_chain_is_an_error_not_a_shorter_queue(memory_stub, nc) -> None:
    created = await _agent(memory_stub)
    agent_id = created.config.id
    revision = await _step(memory_stub, agent_id, created.revision, 0)
    kv = await nc.jetstream().key_value(subjects.KV_AGENTS)
    orphan = common_pb2.AgentState(config=created.config, queue=[msg("user", "after a lost record")],
                                   stored_base=revision + 10_000_000, stored_depth=1)
    await kv.update(subjects.agent_key(TENANT, agent_id), orphan.SerializeToString(), last=revision)
    reader = await _reader(nc)
    with pytest.raises(Internal, match="are gone from the bucket"):
        await reader.get(TENANT, agent_id)
    # Recall indexing needs only the agent's embedding model, which every record holds whole: the
    # agent's committed messages still get indexed, and the log is not held up behind them.
    assert await AgentModels(reader).get(TENANT, agent_id) == (created.config.embedding_model,
                                                               created.config.embedding_dim)


async def test_a_store_without_depth_writes_whole_records(memory_stub, nc) -> None:
    created = await _agent(memory_stub)
    js = nc.jetstream()
    store = AgentStore(await js.key_value(subjects.KV_AGENTS), StateCache(), max_depth=0)
    await store.cache.watch(js, subjects.KV_AGENTS)
    try:
        await store.get(TENANT, created.config.id)
        found = store.head(TENANT, created.config.id)
        assert found is not None
        state, base = found
        added = [msg("user", "kept whole")]
        state.queue.extend(added)
        await store.put_step(state, base, added)
        record = common_pb2.AgentState.FromString((await _raw(nc, created.config.id))[1])
        assert not record.stored_base and [m.text for m in record.queue] == ["kept whole"]
    finally:
        await store.cache.close()


async def test_a_bucket_of_an_earlier_release_gets_the_history(private_nats) -> None:
    from nats.js.api import KeyValueConfig, StorageType

    client = await connect(private_nats.url, "tests")
    try:
        js = client.jetstream()
        await js.create_key_value(KeyValueConfig(bucket=subjects.KV_AGENTS, history=1, storage=StorageType.FILE))
        await js.key_value(subjects.KV_AGENTS)
        buckets = await ensure_jetstream(js)
        assert (await buckets[subjects.KV_AGENTS].status()).history == state_records.HISTORY
    finally:
        await client.drain()


class _RacedKV(_CountingKV):
    """The bucket, where a burst of writes lands while the first chain read is under way."""

    def __init__(self, kv: Any, burst: Any) -> None:
        super().__init__(kv)
        self._burst = burst

    async def get(self, key: str, revision: int | None = None) -> Any:
        if revision is not None and self._burst is not None:
            burst, self._burst = self._burst, None
            await burst()
        return await super().get(key, revision=revision)


async def test_a_read_outrun_by_writes_starts_again_from_the_newest_record(
        memory_service, memory_stub, nc) -> None:
    agent_id, revision = await _agent_after(memory_stub, 3)

    async def burst() -> None:  # enough writes to push the chain being read out of the bucket
        nonlocal revision
        for n in range(3, 3 + state_records.HISTORY + 2):
            revision = await _step(memory_stub, agent_id, revision, n)

    replica = await _reader(nc)
    raced = _RacedKV(replica.reads, burst)
    replica.reads = raced  # type: ignore[assignment]
    state = await replica.get(TENANT, agent_id)
    writer = await memory_service.store.get(TENANT, agent_id)
    assert state.revision == revision == writer.revision
    assert state.SerializeToString() == writer.SerializeToString()
    assert len(state.queue) == 2 * (3 + state_records.HISTORY + 2)


async def test_steps_after_an_eviction_and_an_edit_carry_the_whole_state_on(
        memory_service, memory_stub, nc) -> None:
    agent_id, revision = await _agent_after(memory_stub, 3)
    oldest = (await memory_service.store.get(TENANT, agent_id)).queue[0].id
    revision = await _step(memory_stub, agent_id, revision, 3, evict=[oldest])
    ref = common_pb2.AgentRef(tenant_id=TENANT, agent_id=agent_id)
    await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="human", value="Name: Ada"))
    revision = (await memory_service.store.get(TENANT, agent_id)).revision
    head_steps = memory_service.store.head_steps
    for n in range(4, 4 + 2 * state_records.HISTORY):   # past two whole records written from the head
        revision = await _step(memory_stub, agent_id, revision, n)
        held = await memory_service.store.get(TENANT, agent_id)
        fresh = await (await _reader(nc)).get(TENANT, agent_id)
        assert fresh.revision == held.revision == revision
        assert fresh.SerializeToString() == held.SerializeToString()
    assert memory_service.store.head_steps - head_steps == 2 * state_records.HISTORY
    assert oldest not in {m.id for m in held.queue} and len(held.queue) == 2 * (4 + 2 * state_records.HISTORY) - 1
    assert {b.label: b.value for b in held.blocks}["human"] == "Name: Ada"
    texts = [m.text.split()[1] for m in held.queue if m.role == "user"]
    assert texts == [str(n) for n in range(1, 4 + 2 * state_records.HISTORY)]
