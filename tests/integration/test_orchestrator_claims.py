"""A turn claimed while it already runs: its first model call overlaps the order check and the lease
write (TurnRunner.run's `claim`); nothing of it lands before the claim holds."""

from __future__ import annotations

from mnemo.common import subjects
from mnemo.orchestrator.leases import LeaseManager
from mnemo.v1 import common_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import (  # noqa: F401
    EventCollector,
    agent_factory,
    chat_llm,
    orchestrator,
    run_turn,
    submit_turn,
)
from tests.helpers import eventually


async def test_a_turn_started_before_its_claim_changes_nothing_until_the_claim_holds(
        orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    """The agent's previous turn ran on this replica, so its next one starts on the state alone (the
    model is called while the order check and the lease write are answered). Another replica holding
    the lease meanwhile: the turn commits nothing and publishes nothing until it gets the lease, and
    then runs once."""
    agent = await agent_factory()
    agent_id = agent.config.id
    assert (await run_turn(nc, "t1", agent_id, "first")).stop_reason == "end_turn"
    key = subjects.agent_key("t1", agent_id)
    await eventually(lambda: orchestrator.consumer.leases.likely_ours(key))  # released after the events
    other = LeaseManager(await nc.jetstream().key_value(subjects.KV_LEASES), "other-replica", 30)
    held = await other.acquire(key)
    assert held is not None
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent_id)
    before = await memory_stub.GetContext(ref)
    calls = len(scripted_llm.chat_requests())
    js = nc.jetstream()
    async with EventCollector(js, "t1", agent_id) as events:
        turn_id = await submit_turn(js, "t1", agent_id, "second")

        async def called_and_handed_back() -> bool:
            # The speculative model call, then the refused claim: the turn went back to the queue.
            info = await js.consumer_info(subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)
            return len(scripted_llm.chat_requests()) > calls and bool(info.num_redelivered)

        await eventually(called_and_handed_back)
        assert len(scripted_llm.chat_requests()) == calls + 1
        after = await memory_stub.GetContext(ref)
        assert len(after.queue) == len(before.queue) and after.revision == before.revision
        assert not [e for e in events.events if e.turn_id == turn_id]
        await other.release(held)
        result = await events.wait_turn(turn_id)
    assert result.stop_reason == "end_turn" and result.replies == ["You said: second"]
    final = await memory_stub.GetContext(ref)
    assert [m.text for m in final.queue if m.role == "user"].count("second") == 1
