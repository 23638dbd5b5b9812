"""Recall and archival memory through the memory gRPC API: indexing from the commit log, search by
text / date / role with pagination, bulk import, restart mid-indexing, archival read-your-writes,
delete, tenant isolation."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from mnemo.common import subjects
from mnemo.common.grpcutil import client_channel
from mnemo.common.natsutil import connect
from mnemo.memory.search import create_backend
from mnemo.memory.server import MemoryService
from mnemo.v1 import common_pb2, memory_pb2, memory_pb2_grpc
from tests.fixtures_memory import llm_service, llm_target_of, memory_service, memory_settings, memory_stub  # noqa: F401
from tests.helpers import NatsServer, eventually

Ref = common_pb2.AgentRef


async def new_agent(stub, tenant: str = "rt") -> tuple[Ref, common_pb2.AgentState]:  # type: ignore[no-untyped-def]
    state = await stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id=tenant))
    return Ref(tenant_id=tenant, agent_id=state.config.id), state


async def recall_total(stub, ref: Ref, **kw) -> int:  # type: ignore[no-untyped-def]
    return (await stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, **kw))).total


HISTORY = [
    ("user", "We adopted a beagle named Biscuit last weekend", "2024-03-01T10:00:00Z"),
    ("assistant", "Congratulations on Biscuit! How is the beagle settling in?", "2024-03-01T10:00:05Z"),
    ("user", "My sister Maria is visiting from Lisbon in April", "2024-03-15T09:00:00Z"),
    ("assistant", "Lovely, I hope Maria enjoys her stay", "2024-03-15T09:00:04Z"),
    ("user", "I started learning the cello", "2024-04-02T18:30:00Z"),
    ("assistant", "The cello is a beautiful instrument", "2024-04-02T18:30:03Z"),
]


async def import_history(stub, ref: Ref) -> None:  # type: ignore[no-untyped-def]
    resp = await stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=[
        common_pb2.Message(role=r, text=t, created_at=c) for r, t, c in HISTORY]))
    assert resp.imported == len(HISTORY)
    await eventually(lambda: _total_is(stub, ref, len(HISTORY)),
                     timeout=30, message="imported history indexed")


async def _total_is(stub, ref: Ref, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await recall_total(stub, ref) == n


async def test_commit_is_indexed_and_searchable(memory_stub):
    ref, state = await new_agent(memory_stub)
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="t1:1", messages=[
            common_pb2.Message(role="user", text="my favourite colour is teal"),
            common_pb2.Message(role="assistant", text="noted", tool_calls=[common_pb2.ToolCall(
                id="c1", name="send_message", arguments='{"message": "Teal is a great colour!"}')])]))
    await eventually(lambda: _total_is(memory_stub, ref, 2), timeout=30, message="commit indexed")
    found = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="favourite colour teal",
                                                                          role="user"))
    assert found.total == 1 and found.hits[0].message.text == "my favourite colour is teal"
    assert found.hits[0].message.id.startswith("msg-")
    # The assistant's reply (inside the send_message call) is searchable too; the message comes back whole.
    reply = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="great", role="assistant"))
    assert reply.total == 1 and reply.hits[0].message.tool_calls[0].name == "send_message"
    counts = await memory_stub.GetCounts(ref)
    assert counts.recall == 2 and counts.queue == 2


async def test_recall_date_range_role_and_pagination(memory_stub):
    ref, _ = await new_agent(memory_stub)
    await import_history(memory_stub, ref)
    newest = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, page_size=4))
    assert newest.total == 6 and newest.page == 1 and newest.page_size == 4
    assert [h.message.text for h in newest.hits] == [t for _, t, _ in reversed(HISTORY)][:4]
    page2 = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, page=2, page_size=4))
    assert [h.message.text for h in page2.hits] == [HISTORY[1][1], HISTORY[0][1]]

    march = await memory_stub.SearchRecall(
        memory_pb2.SearchRecallRequest(ref=ref, start="2024-03-01", end="2024-03-15"))
    assert march.total == 4  # end date inclusive: the whole of March 15
    march_users = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(
        ref=ref, start="2024-03-01", end="2024-03-31", role="user"))
    assert {h.message.text for h in march_users.hits} == {HISTORY[0][1], HISTORY[2][1]}
    exact = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(
        ref=ref, start="2024-04-02T18:30:01Z", end="2024-04-02T18:30:03Z"))
    assert [h.message.text for h in exact.hits] == [HISTORY[5][1]]
    by_text = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="Biscuit the beagle"))
    assert by_text.hits[0].message.text == HISTORY[0][1]
    in_range = await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, query="cello", start="2024-03-01",
                                                                             end="2024-03-31"))
    assert all("cello" not in h.message.text for h in in_range.hits)

    for bad in (memory_pb2.SearchRecallRequest(ref=ref, start="yesterday"),
                memory_pb2.SearchRecallRequest(ref=ref, start="2024-05-01", end="2024-04-01"),
                memory_pb2.SearchRecallRequest(ref=ref, page_size=101),
                memory_pb2.SearchRecallRequest(ref=ref, page=-1),
                memory_pb2.SearchRecallRequest(ref=ref, role="robot")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await memory_stub.SearchRecall(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_import_is_idempotent_by_id(memory_stub):
    ref, _ = await new_agent(memory_stub)
    msgs = [common_pb2.Message(id=f"imp-{i}", role="user", text=f"line {i}", created_at="2024-01-01T00:00:00Z")
            for i in range(5)]
    await memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=msgs))
    await memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=msgs))
    marker = [common_pb2.Message(id="imp-last", role="user", text="marker", created_at="2024-01-02T00:00:00Z")]
    await memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=marker))
    await eventually(lambda: _total_is(memory_stub, ref, 6), timeout=30, message="imports indexed")
    assert await recall_total(memory_stub, ref) == 6
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=[
            common_pb2.Message(role="user", text="x", created_at="last tuesday")]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_archival_read_your_writes_tags_pagination_delete(memory_stub):
    ref, _ = await new_agent(memory_stub)
    resp = await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="The capital of Portugal is Lisbon", tags=["geo"]),
        memory_pb2.PassageInput(text="Beagles are friendly scent hounds", tags=["dogs", "facts"]),
        memory_pb2.PassageInput(id="fixed-1", text="Cellos have four strings", tags=["music"]),
    ]))
    assert len(resp.ids) == 3 and resp.ids[2] == "fixed-1"
    # Searchable as soon as the insert returns.
    hit = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="Lisbon capital"))
    assert hit.hits[0].passage.text == "The capital of Portugal is Lisbon" and hit.hits[0].passage.tags == ["geo"]
    tagged = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, tags=["dogs", "facts"]))
    assert [h.passage.id for h in tagged.hits] == [resp.ids[1]] and tagged.total == 1
    listed = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, page=2, page_size=2))
    assert listed.total == 3 and len(listed.hits) == 1
    # Idempotent insert by id.
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(id="fixed-1", text="Cellos have four strings", tags=["music"])]))
    assert (await memory_stub.GetCounts(ref)).archival == 3
    await memory_stub.DeleteArchival(memory_pb2.DeleteArchivalRequest(ref=ref, passage_id="fixed-1"))
    assert (await memory_stub.GetCounts(ref)).archival == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.DeleteArchival(memory_pb2.DeleteArchivalRequest(ref=ref, passage_id="fixed-1"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
            memory_pb2.PassageInput(text="   ")]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_embedding_dimension_mismatch_is_refused(memory_stub):
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(
        tenant_id="rt", config=common_pb2.AgentConfig(embedding_dim=7)))
    ref = Ref(tenant_id="rt", agent_id=state.config.id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
            memory_pb2.PassageInput(text="hello")]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "dimension" in err.value.details() and "7" in err.value.details()


async def test_delete_agent_removes_recall_archival_and_log(memory_stub, memory_service, nc):
    ref, state = await new_agent(memory_stub)
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="d:1",
        messages=[common_pb2.Message(role="user", text="remember the gate code 4512")]))
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="gate code is 4512")]))
    await eventually(lambda: _total_is(memory_stub, ref, 1), timeout=30, message="indexed")
    await memory_stub.DeleteAgent(ref)
    backend = memory_service.backend
    assert await backend.count_messages(ref.tenant_id, ref.agent_id) == 0
    assert await backend.count_passages(ref.tenant_id, ref.agent_id) == 0
    info = await nc.jetstream().stream_info(subjects.MESSAGES_STREAM,
                                            subjects_filter=subjects.messages_subject(ref.tenant_id, ref.agent_id))
    assert not (info.state.subjects or {})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_tenant_isolation_memory_rpcs(memory_stub):
    ref, _ = await new_agent(memory_stub, "owner2")
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(id="p1", text="secret passage")]))
    foreign = Ref(tenant_id="thief", agent_id=ref.agent_id)
    calls = [
        memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=foreign)),
        memory_stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=foreign, messages=[
            common_pb2.Message(role="user", text="x")])),
        memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=foreign, passages=[
            memory_pb2.PassageInput(text="x")])),
        memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=foreign, query="secret")),
        memory_stub.DeleteArchival(memory_pb2.DeleteArchivalRequest(ref=foreign, passage_id="p1")),
        memory_stub.GetCounts(foreign),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await memory_stub.GetCounts(ref)).archival == 1


async def test_restart_mid_indexing_loses_nothing_and_indexes_nothing_twice(private_nats: NatsServer,
                                                                          llm_service, tmp_path: Path):
    settings = memory_settings(private_nats.url, tmp_path / "home")
    backend = create_backend(settings)  # shared by both service instances: the index survives restarts
    await backend.start()
    first = MemoryService(settings, backend=backend, llm_target=llm_target_of(llm_service))
    await first.start()
    channel = client_channel(first.address)
    stub = memory_pb2_grpc.MemoryServiceStub(channel)
    ref, _ = await new_agent(stub, "rs")
    n = 2400  # several fetches of the indexer
    await stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=[
        common_pb2.Message(role="user", text=f"message number {i}",
                           created_at=f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
        for i in range(n)]))
    await eventually(lambda: first.indexer.indexed > 0, timeout=30, message="indexing started")
    await first.stop()
    await channel.close()
    done_by_first = await backend.count_messages("rs", ref.agent_id)
    assert 0 < done_by_first < n, "the first instance should stop mid-way"

    second = MemoryService(settings, backend=backend, llm_target=llm_target_of(llm_service))
    await second.start()
    try:
        await eventually(lambda: _count_is(backend, ref, n), timeout=60, message="all indexed after restart")
        nc = await connect(private_nats.url, "check")
        info = await nc.jetstream().consumer_info(subjects.MESSAGES_STREAM, subjects.RECALL_INDEXER_CONSUMER)
        await nc.close()
        assert info.num_pending == 0 and info.num_ack_pending == 0
        assert second.indexer.indexed == n - done_by_first  # nothing re-indexed
        assert await backend.count_messages("rs", ref.agent_id) == n
    finally:
        await second.stop()
        await backend.close()


async def _count_is(backend, ref: Ref, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await backend.count_messages(ref.tenant_id, ref.agent_id) == n


async def _in_hand(nc, n: int) -> bool:  # type: ignore[no-untyped-def]
    info = await nc.jetstream().consumer_info(subjects.MESSAGES_STREAM, subjects.RECALL_INDEXER_CONSUMER)
    return info.num_ack_pending == n and info.num_pending == 0


@pytest.mark.parametrize(("linger", "batches"), [(0.0, 2), (5.0, 1)])
async def test_a_step_committed_within_the_linger_joins_the_batch_in_hand(private_nats: NatsServer, llm_service,
                                                                         tmp_path: Path, linger: float,
                                                                         batches: int):
    """MNEMO_RECALL_INDEX_LINGER: a small batch waits for the next steps before it is indexed (one
    embedding run, one index write); with 0 it is indexed at once."""
    settings = memory_settings(private_nats.url, tmp_path / "home", recall_index_linger=linger)
    service = MemoryService(settings, llm_target=llm_target_of(llm_service))
    await service.start()
    channel = client_channel(service.address)
    nc = await connect(private_nats.url, "check")
    try:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        ref, state = await new_agent(stub, "lg")
        first = await stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=state.revision, step_id="t1:1",
            messages=[common_pb2.Message(role="user", text="the first step")]))
        if linger:  # the first step's record is delivered to the indexer, which waits for more
            await eventually(lambda: _in_hand(nc, 1), timeout=10, message="first record in hand")
        else:
            await eventually(lambda: _total_is(stub, ref, 1), timeout=30, message="first step indexed")
        await stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=first.revision, step_id="t2:1",
            messages=[common_pb2.Message(role="user", text="the second step")]))
        if linger:  # nothing is indexed before the linger ends: stop ends it early, the batch in hand is indexed
            assert await recall_total(stub, ref) == 0
            assert service.indexer is not None
            await service.indexer.stop()
            assert await recall_total(stub, ref) == 2
        else:
            await eventually(lambda: _total_is(stub, ref, 2), timeout=30, message="second step indexed")
        assert service.indexer is not None and service.indexer.batches == batches
    finally:
        await nc.close()
        await channel.close()
        await service.stop()


async def test_indexing_waits_while_turns_are_backed_up_then_catches_up(private_nats: NatsServer, llm_service,
                                                                      tmp_path: Path):
    """MNEMO_RECALL_INDEX_DEFER: with 8 or more turns waiting for the orchestrators, a batch waits
    (the turns get the cores), up to that many seconds from its oldest record, and is indexed as soon
    as the backlog is gone."""
    from nats.js.api import AckPolicy, ConsumerConfig

    settings = memory_settings(private_nats.url, tmp_path / "home", recall_index_linger=0.0,
                               recall_index_defer=30.0)
    service = MemoryService(settings, llm_target=llm_target_of(llm_service))
    await service.start()
    channel = client_channel(service.address)
    nc = await connect(private_nats.url, "check")
    js = nc.jetstream()
    try:
        await js.add_consumer(subjects.TURNS_STREAM, ConsumerConfig(
            durable_name=subjects.ORCHESTRATOR_CONSUMER, ack_policy=AckPolicy.EXPLICIT,
            filter_subject="mnemo.turns.>"))
        for i in range(8):  # turns nobody has taken yet
            await js.publish(subjects.turns_subject("bk", f"a{i}"), b"turn")
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        ref, state = await new_agent(stub, "bk")
        await stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=state.revision, step_id="t1:1",
            messages=[common_pb2.Message(role="user", text="said during a burst")]))
        assert service.indexer is not None
        indexer = service.indexer
        await eventually(lambda: _true(indexer.deferred >= 3), timeout=10, message="indexing waits")
        assert await recall_total(stub, ref) == 0
        pull = await js.pull_subscribe("mnemo.turns.>", durable=subjects.ORCHESTRATOR_CONSUMER,
                                       stream=subjects.TURNS_STREAM)
        for msg in await pull.fetch(8, timeout=5):  # the orchestrators catch up
            await msg.ack_sync()
        await eventually(lambda: _total_is(stub, ref, 1), timeout=10, message="indexed once the turns ran")
    finally:
        await nc.close()
        await channel.close()
        await service.stop()


async def _true(value: bool) -> bool:
    return value
