"""Background memory consolidation driven by the scripted model: after N turns it commits one step
with a memory_consolidated event (the diff, the checkpoint taken first), visible in history and
undone by restoring that checkpoint; it waits for the agent's step lease; the idle timer; the agent
sees the last consolidation in its memory metadata."""

from __future__ import annotations

import json
from typing import Any

from mnemo.common import subjects
from mnemo.orchestrator.consolidator import BUSY_DELAY
from mnemo.orchestrator.leases import LeaseManager
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import EventCollector, agent_factory, chat_llm, orchestrator, run_turn  # noqa: F401
from tests.helpers import eventually
from tests.scripted_llm import offers

HUMAN = "\n".join(["Name: Chad.", "Lives in Oslo.", "Likes tea.", "Lives in Oslo.", "Moved to Bergen in May.",
                   "Likes tea.", "Has a cat called Miso."])


def _consolidation(**arguments: Any) -> dict[str, Any]:
    return {"tool_call": {"name": "consolidate_memory", "arguments": arguments}}


async def _enabled_agent(agent_factory: Any, memory_stub: Any, **cfg: Any) -> common_pb2.AgentState:
    agent = await agent_factory(name="sam", consolidation=common_pb2.ConsolidationConfig(enabled=True, **cfg),
                                blocks=[common_pb2.MemoryBlock(label="human", value=HUMAN, limit=110)])
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    state = await memory_stub.GetContext(ref)   # a summary to refresh, duplicate passages to find
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="seed:1", summary_changed=True,
        summary="Chad said hello. Chad said hello. Chad likes tea."))
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, dedup="off", passages=[
        memory_pb2.PassageInput(text="Chad's cat Miso is grey."),
        memory_pb2.PassageInput(text="chad's cat miso is grey"),
        memory_pb2.PassageInput(text="Chad works at the harbour.")]))
    return agent


async def test_after_n_turns_one_step_with_the_diff_undone_by_its_checkpoint(orchestrator, agent_factory,
                                                                            memory_stub, scripted_llm, nc):
    agent = await _enabled_agent(agent_factory, memory_stub, after_turns=2, model="gpt-4o-mini")
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    before = await memory_stub.GetContext(ref)
    dups = (await memory_stub.FindArchivalDuplicates(memory_pb2.FindArchivalDuplicatesRequest(ref=ref))).groups
    keep, drop = dups[0].passages[0].id, dups[0].passages[1].id
    new_human = "Name: Chad.\nMoved to Bergen in May.\nLikes tea.\nHas a cat called Miso."
    scripted_llm.push(_consolidation(blocks=[{"label": "human", "value": new_human},
                                             {"label": "persona", "value": "not offered"}],
                                     summary="Chad likes tea.", merges=[{"keep_id": keep, "drop_ids": [drop]}]))
    async with EventCollector(nc.jetstream(), "t1", agent.config.id) as events:
        await run_turn(nc, "t1", agent.config.id, "hello")
        assert not [e for e in events.events if e.type == "memory_consolidated"]   # 1 turn: not due
        await run_turn(nc, "t1", agent.config.id, "hello again")

        async def consolidated() -> bool:
            return any(e.type == "memory_consolidated" for e in events.events)
        await eventually(consolidated, timeout=60, message="the consolidation step's event")
    (event,) = [e for e in events.events if e.type == "memory_consolidated"]
    body = event.memory_consolidated
    assert body.reason == "after_turns" and body.model == "gpt-4o-mini" and body.checkpoint_id
    assert [(c.label, c.before, c.after) for c in body.blocks] == [("human", HUMAN, new_human)]
    assert "-Lives in Oslo." in body.diff and "+Chad likes tea." in body.diff
    assert (body.summary_before, body.summary_after) == (before.summary, "Chad likes tea.")
    assert [(m.keep_id, list(m.drop_ids)) for m in body.merges] == [(keep, [drop])]
    # the model saw only what may change: the block near its limit, the summary, the duplicates
    (request,) = [r for r in scripted_llm.chat_requests() if offers(r, "consolidate_memory")]
    task = json.loads(request["messages"][-1]["content"])
    assert [b["label"] for b in task["blocks"]] == ["human"] and task["duplicates"][0]["passages"][0]["id"] == keep
    # one committed step: the state moved by one revision from the last turn's
    after = await memory_stub.GetContext(ref)
    assert after.last_step_id == f"{event.turn_id}:1"
    assert next(b.value for b in after.blocks if b.label == "human") == new_human
    assert after.summary == "Chad likes tea." and after.consolidation.turns_since == 0
    assert (after.consolidation.runs, after.consolidation.blocks_rewritten, after.consolidation.merge_proposals) == (
        1, 1, 1)
    assert (await memory_stub.GetCounts(ref)).archival == 3   # merges are proposals: nothing deleted
    # the agent's next step reports it in the memory metadata
    await run_turn(nc, "t1", agent.config.id, "what changed?")
    system = scripted_llm.chat_requests()[-1]["messages"][0]["content"]
    assert "- memory last consolidated: " in system and "(1 block(s) rewritten, summary refreshed, 1 archival" in system
    # undo: restore the checkpoint it took first
    restored = await memory_stub.RestoreCheckpoint(memory_pb2.RestoreCheckpointRequest(
        ref=ref, checkpoint_id=body.checkpoint_id))
    assert next(b.value for b in restored.blocks if b.label == "human") == HUMAN
    assert restored.summary == before.summary


async def test_it_waits_for_the_agents_step_lease(orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    agent = await _enabled_agent(agent_factory, memory_stub, after_turns=1)
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id)
    kv = await nc.jetstream().key_value(subjects.KV_LEASES)
    holder = LeaseManager(kv, "a-turn-elsewhere", ttl=60)
    lease = await holder.acquire(subjects.agent_key("t1", agent.config.id))
    assert lease is not None
    consolidator = orchestrator.consolidator
    request = common_pb2.ConsolidationRequest(tenant_id="t1", agent_id=agent.config.id, reason="requested")
    before = await memory_stub.GetContext(ref)
    outcome = await consolidator.run(request)
    assert outcome.later == BUSY_DELAY and not outcome.ran
    assert (await memory_stub.GetContext(ref)).revision == before.revision   # nothing ran beside the "turn"
    await holder.release(lease)
    outcome = await consolidator.run(request)
    assert outcome.ran and outcome.later is None
    after = await memory_stub.GetContext(ref)
    assert after.consolidation.runs == 1 and after.last_step_id == f"consolidation-{agent.config.id}-1:1"
    # the default scripted consolidation: repeated lines gone, newest kept within 60 % of the limit
    human = next(b.value for b in after.blocks if b.label == "human")
    assert human.count("Likes tea.") == 1 and len(human) <= 66 and human.endswith("Has a cat called Miso.")
    outcome = await consolidator.run(request)   # asked before the run that just happened: done
    assert not outcome.ran and outcome.later is None


async def test_idle_minutes_trigger_it_after_the_last_turn(orchestrator, agent_factory, memory_stub, scripted_llm, nc):
    agent = await _enabled_agent(agent_factory, memory_stub, after_turns=-1, idle_minutes=0.02)
    async with EventCollector(nc.jetstream(), "t1", agent.config.id) as events:
        await run_turn(nc, "t1", agent.config.id, "hello")

        async def consolidated() -> bool:
            return any(e.type == "memory_consolidated" for e in events.events)
        await eventually(consolidated, timeout=60, message="a consolidation once the agent was idle")
    (event,) = [e for e in events.events if e.type == "memory_consolidated"]
    assert event.memory_consolidated.reason == "idle"
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
    assert state.consolidation.turns_since == 0 and state.consolidation.last_at

