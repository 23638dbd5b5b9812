"""Archival hygiene through the memory service, on each search backend: deduplication on insert
(switchable, with counts), concurrent inserts of one text from two memory service instances stored
once, expiry hiding a passage at once, bulk deletes by filter with counts, duplicate groups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mnemo.common.grpcutil import client_channel
from mnemo.memory.search.elastic import ElasticsearchBackend
from mnemo.memory.server import MemoryService
from mnemo.v1 import common_pb2, memory_pb2, memory_pb2_grpc
from tests.fixtures_memory import llm_service, llm_target_of, memory_settings  # noqa: F401
from tests.fixtures_search import es_linear_url, es_url, search_backend  # noqa: F401


@pytest.fixture
async def replicas(nats_url: str, llm_service: Any, search_backend: Any,
                   tmp_path: Path) -> AsyncIterator[list[memory_pb2_grpc.MemoryServiceStub]]:
    """Two memory service instances over one store: the same embedded index, or two Elasticsearch
    clients of one cluster and index prefix (as replicas run)."""
    backends = [search_backend]
    if isinstance(search_backend, ElasticsearchBackend):
        second = ElasticsearchBackend(search_backend.url, search_backend.prefix)
        await second.start()
        backends.append(second)
    else:
        backends.append(search_backend)
    services, channels = [], []
    for i, backend in enumerate(backends):
        service = MemoryService(memory_settings(nats_url, tmp_path / f"home{i}"), backend=backend,
                                llm_target=llm_target_of(llm_service))
        await service.start()
        services.append(service)
        channels.append(client_channel(service.address))
    yield [memory_pb2_grpc.MemoryServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()
    for service in services:
        await service.stop()
    if backends[1] is not backends[0]:
        await backends[1].close()


async def _agent(stub: memory_pb2_grpc.MemoryServiceStub) -> common_pb2.AgentRef:
    tenant = f"hy{uuid.uuid4().hex[:8]}"
    state = await stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id=tenant))
    return common_pb2.AgentRef(tenant_id=tenant, agent_id=state.config.id)


def _p(text: str, **kw: Any) -> memory_pb2.PassageInput:
    return memory_pb2.PassageInput(text=text, **kw)


async def test_insert_deduplicates_equal_texts_and_counts(replicas: list[Any]) -> None:
    stub = replicas[0]
    ref = await _agent(stub)
    first = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        _p("The user's sister Ana lives in Lisbon."), _p("The user plays the cello."),
        _p("the user's sister ana lives in lisbon")]))  # the same words, another spelling: within the batch
    assert list(first.duplicate) == [False, False, True] and (first.inserted, first.deduplicated) == (2, 1)
    assert first.ids[2] == first.ids[0]
    again = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        _p("The user's sister Ana lives in Lisbon!", tags=["family"]), _p("The user likes figs.")]))
    assert list(again.duplicate) == [True, False] and again.ids[0] == first.ids[0]
    assert (again.inserted, again.deduplicated) == (1, 1)
    assert (await stub.GetCounts(ref)).archival == 3
    off = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(
        ref=ref, dedup="off", passages=[_p("The user plays the cello.")]))
    assert list(off.duplicate) == [False] and off.ids[0] != first.ids[1]
    assert (await stub.GetCounts(ref)).archival == 4
    with pytest.raises(Exception) as err:
        await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, dedup="maybe", passages=[_p("x")]))
    assert "dedup" in str(err.value)


async def test_concurrent_inserts_of_one_text_from_two_replicas_store_it_once(replicas: list[Any]) -> None:
    ref = await _agent(replicas[0])
    text = "The user's passport expires in March 2031."

    async def insert(i: int) -> memory_pb2.InsertArchivalResponse:
        return await replicas[i % 2].InsertArchival(memory_pb2.InsertArchivalRequest(
            ref=ref, passages=[_p(text, id=f"try-{i}")]))

    for round_ in range(3):  # a few rounds: the race is won by another writer each time
        answers = await asyncio.gather(*(insert(10 * round_ + i) for i in range(8)))
        ids = {a.ids[0] for a in answers}
        assert len(ids) == 1, ids
        stored = [a for a in answers if not a.duplicate[0]]
        assert len(stored) == (1 if round_ == 0 else 0), [list(a.duplicate) for a in answers]
    assert (await replicas[1].GetCounts(ref)).archival == 1
    listed = await replicas[1].SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, page_size=50))
    assert [h.passage.text for h in listed.hits] == [text]
    # different texts at once are all stored
    answers = await asyncio.gather(*(replicas[i % 2].InsertArchival(memory_pb2.InsertArchivalRequest(
        ref=ref, passages=[_p(f"distinct fact number {i} about tides")])) for i in range(6)))
    assert all(not a.duplicate[0] for a in answers)
    assert (await replicas[0].GetCounts(ref)).archival == 7


async def test_a_deleted_passage_can_be_stored_again(replicas: list[Any]) -> None:
    stub = replicas[0]
    ref = await _agent(stub)
    first = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[_p("Call mum on Sunday.")]))
    await stub.DeleteArchival(memory_pb2.DeleteArchivalRequest(ref=ref, passage_id=first.ids[0]))
    again = await replicas[1].InsertArchival(memory_pb2.InsertArchivalRequest(
        ref=ref, passages=[_p("Call mum on Sunday.")]))
    assert list(again.duplicate) == [False] and again.ids[0] != first.ids[0]
    assert (await stub.GetCounts(ref)).archival == 1


async def test_expiry_hides_at_once_and_counts(replicas: list[Any]) -> None:
    stub = replicas[0]
    ref = await _agent(stub)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    resp = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        _p("Parking spot 42 until noon.", expires_at=past), _p("Hotel room 1207 this week.", ttl_seconds=3600),
        _p("Allergic to penicillin.")]))
    assert resp.inserted == 3 and resp.expiring == 2
    found = await stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="parking spot", page_size=10))
    assert "Parking spot 42 until noon." not in [h.passage.text for h in found.hits]
    listed = await stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, page_size=10))
    assert sorted(h.passage.text for h in listed.hits) == ["Allergic to penicillin.", "Hotel room 1207 this week."]
    hotel = next(h.passage for h in listed.hits if h.passage.text.startswith("Hotel"))
    assert hotel.expires_at and datetime.fromisoformat(hotel.expires_at.replace("Z", "+00:00")) > datetime.now(UTC)
    assert (await stub.GetCounts(ref)).archival == 2
    # the expired text is free again (its passage is hidden): stored anew
    again = await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        _p("Parking spot 42 until noon.")]))
    assert list(again.duplicate) == [False]
    for bad in (_p("x", ttl_seconds=-5), _p("x", expires_at="tomorrow"), _p("x", expires_at=past, ttl_seconds=5)):
        with pytest.raises(Exception) as err:
            await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[bad]))
        assert "INVALID_ARGUMENT" in str(err.value)


async def test_bulk_delete_by_filter_counts_and_needs_a_filter(replicas: list[Any]) -> None:
    stub = replicas[0]
    ref = await _agent(stub)
    await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        _p("trip to Rome", tags=["travel", "2023"]), _p("trip to Oslo", tags=["travel"]),
        _p("tax return", tags=["finance"]), _p("chapter one", source_id="doc-1"),
        _p("chapter two", source_id="doc-1")]))
    with pytest.raises(Exception) as err:
        await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(ref=ref))
    assert "at least one filter" in str(err.value)
    with pytest.raises(Exception) as err:
        await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(ref=ref, start="last week"))
    assert "INVALID_ARGUMENT" in str(err.value)
    assert (await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(
        ref=ref, source_id="doc-1"))).deleted == 2
    assert (await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(
        ref=ref, tags=["travel", "2023"]))).deleted == 1
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert (await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(
        ref=ref, start=tomorrow))).deleted == 0
    today = datetime.now(UTC).date().isoformat()
    assert (await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(
        ref=ref, start=today, end=today, tags=["travel"]))).deleted == 1
    assert (await stub.GetCounts(ref)).archival == 1
    other = await _agent(stub)   # another agent's filter never reaches this one
    assert (await stub.BulkDeleteArchival(memory_pb2.BulkDeleteArchivalRequest(
        ref=other, tags=["finance"]))).deleted == 0
    assert (await stub.GetCounts(ref)).archival == 1


async def test_duplicate_groups_of_stored_passages(replicas: list[Any]) -> None:
    stub = replicas[0]
    ref = await _agent(stub)
    await stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, dedup="off", passages=[
        _p("The user's cat is called Miso."), _p("Something else entirely."), _p("the user's cat is called miso"),
        _p("The user's cat is called Miso.")]))
    groups = (await stub.FindArchivalDuplicates(memory_pb2.FindArchivalDuplicatesRequest(ref=ref))).groups
    assert len(groups) == 1 and len(groups[0].passages) == 3
    assert {p.text.lower().rstrip(".") for p in groups[0].passages} == {"the user's cat is called miso"}
