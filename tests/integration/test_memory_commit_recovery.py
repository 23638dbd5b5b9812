"""The memory service's start-up pass: commit outboxes left unpublished by a crash (CAS written,
publish lost) reach the commit log and recall without the agent ever being touched again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnemo.common import subjects
from mnemo.memory.commitlog import read_record
from mnemo.memory.server import MemoryService
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, llm_target_of, memory_service, memory_settings, memory_stub  # noqa: F401
from tests.helpers import eventually


async def _log_count(nc: Any, subject: str) -> int:
    """Messages in the agent's commit log (records hold a step's messages each)."""
    info = await nc.jetstream().stream_info(subjects.MESSAGES_STREAM, subjects_filter=subject)
    records = (info.state.subjects or {}).get(subject, 0)
    if not records:
        return 0
    sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
    try:
        count = 0
        for _ in range(records):
            record = await sub.next_msg(timeout=5)
            count += len(read_record(record.data, record.headers))
    finally:
        await sub.unsubscribe()
    return count


async def _start_replica(nats_url: str, home: Path, llm: Any) -> MemoryService:
    replica = MemoryService(memory_settings(nats_url, home), llm_target=llm_target_of(llm), run_indexer=False)
    await replica.start()
    await eventually(lambda: replica.recovered_outboxes is not None, timeout=30,
                     message="start-up recovery pass did not finish")
    return replica


@pytest.mark.parametrize("record", ["whole", "step"])
async def test_startup_pass_publishes_outboxes_of_untouched_agents(
        memory_stub, memory_service, llm_service, nc, nats_url: str, tmp_path: Path, record: str) -> None:
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="crashscan"))
    agent_id = state.config.id
    # What a crashed CommitStep leaves behind: the state written with its outbox, nothing published.
    store = memory_service.store
    stored = await store.get("crashscan", agent_id)
    found = store.head("crashscan", agent_id) if record == "step" else None
    if found is not None:
        stored = found[0]  # the state around the queue, as a step reads it
    lost = [common_pb2.Message(id=f"msg-lost-{i}", role="user", text=f"written but never published {i}",
                               created_at="2024-02-02T00:00:00Z") for i in range(2)]
    stored.queue.extend(lost)
    stored.commit_outbox.extend(lost)
    stored.last_step_id = "c:1"
    # A step's write holds only its messages (a step record); other writes hold the whole state.
    if found is not None:
        await store.put_step(stored, found[1], lost)
    else:
        await store.put(stored, stored.revision)
    written = common_pb2.AgentState.FromString((await memory_service.store.kv.get(
        subjects.agent_key("crashscan", agent_id))).value)
    assert bool(written.stored_base) == (record == "step")
    subject = subjects.messages_subject("crashscan", agent_id)
    assert await _log_count(nc, subject) == 0

    # A memory replica starting up repairs the log; nobody reads the agent.
    replica = await _start_replica(nats_url, tmp_path / "replica-1", llm_service)
    try:
        assert replica.recovered_outboxes >= 1
        assert await _log_count(nc, subject) == 2
    finally:
        await replica.stop()

    # ... and recall gets the messages (the first service's indexer reads the log).
    ref = common_pb2.AgentRef(tenant_id="crashscan", agent_id=agent_id)

    async def indexed() -> bool:
        return (await memory_stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref))).total == 2
    await eventually(indexed, timeout=30, message="recovered messages not indexed")

    # Another start-up pass finds them published already: no duplicates in the log.
    replica = await _start_replica(nats_url, tmp_path / "replica-2", llm_service)
    try:
        assert await _log_count(nc, subject) == 2
    finally:
        await replica.stop()
