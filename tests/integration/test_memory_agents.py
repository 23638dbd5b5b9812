"""Memory service, stage 1: agents, context, CommitStep (CAS, duplicates, limits), core memory,
templates, tenant isolation — through a real gRPC client on a real nats-server."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mnemo.common import subjects
from mnemo.memory.commitlog import read_record
from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401

Ref = common_pb2.AgentRef


async def create(stub, tenant: str = "t1", **kw) -> common_pb2.AgentState:  # type: ignore[no-untyped-def]
    return await stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id=tenant, **kw))


def msg(role: str, text: str, **kw) -> common_pb2.Message:  # type: ignore[no-untyped-def]
    return common_pb2.Message(role=role, text=text, **kw)


async def test_create_uses_shipped_templates_and_llm_defaults(memory_stub):
    state = await create(memory_stub, config=common_pb2.AgentConfig(name="sam"))
    assert state.config.id.startswith("agent-")
    assert state.config.tenant_id == "t1"
    assert state.config.model  # the llm-proxy's default model
    assert state.config.embedding_model and state.config.embedding_dim > 0
    labels = {b.label: b for b in state.blocks}
    assert "companion" in labels["persona"].value
    assert labels["human"].value and labels["persona"].limit == 2000
    assert state.revision > 0
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    got = await memory_stub.GetAgent(ref)
    assert got.config == state.config and got.revision == state.revision
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="a fact")]))
    assert (await memory_stub.GetContext(ref)).archival_count == 1
    assert (await memory_stub.GetContext(ref)).revision == state.revision  # inserts never move the revision


async def test_create_with_text_blocks_and_limit_error(memory_stub):
    state = await create(memory_stub, persona="I am a pirate.", human="Name: Ana",
                         blocks=[common_pb2.MemoryBlock(label="tasks", value="", limit=50)])
    assert [b.label for b in state.blocks] == ["persona", "human", "tasks"]
    assert state.blocks[0].value == "I am a pirate."
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(memory_stub, persona="x" * 2001)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2001" in err.value.details() and "2000" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(memory_stub, persona_name="nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_update_delete(memory_stub):
    tenant = "tlist"
    made = [await create(memory_stub, tenant) for _ in range(5)]
    first = await memory_stub.ListAgents(memory_pb2.ListAgentsRequest(tenant_id=tenant, page=1, page_size=2))
    assert first.total == 5 and len(first.agents) == 2
    third = await memory_stub.ListAgents(memory_pb2.ListAgentsRequest(tenant_id=tenant, page=3, page_size=2))
    assert len(third.agents) == 1
    all_ids = {a.id for a in (await memory_stub.ListAgents(
        memory_pb2.ListAgentsRequest(tenant_id=tenant, page_size=100))).agents}
    assert all_ids == {s.config.id for s in made}

    ref = Ref(tenant_id=tenant, agent_id=made[0].config.id)
    upd = await memory_stub.UpdateAgent(memory_pb2.UpdateAgentRequest(
        ref=ref, config=common_pb2.AgentConfig(name="renamed", model="other"), update_mask=["name"]))
    assert upd.config.name == "renamed" and upd.config.model == made[0].config.model
    assert upd.revision > made[0].revision
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.UpdateAgent(memory_pb2.UpdateAgentRequest(ref=ref, update_mask=["bogus"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    await memory_stub.DeleteAgent(ref)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.GetAgent(ref)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    left = await memory_stub.ListAgents(memory_pb2.ListAgentsRequest(tenant_id=tenant))
    assert left.total == 4


async def test_commit_step_applies_everything(memory_stub):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    resp = await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="turn1:1",
        messages=[msg("user", "hello"), msg("assistant", "thinking")],
        blocks=[common_pb2.MemoryBlock(label="human", value="Name: Bo")],
        summary_changed=True, summary="so far nothing",
        turn=common_pb2.TurnProgress(turn_id="turn1", steps_done=1, heartbeat_pending=True),
        memory_warning_sent=True, archival_delta=2,
        events=[common_pb2.Event(type="inner_thought", id="e1")]))
    assert not resp.duplicate and resp.revision > state.revision
    ctx = await memory_stub.GetContext(ref)
    assert ctx.revision == resp.revision
    assert [m.text for m in ctx.queue] == ["hello", "thinking"]
    assert all(m.id.startswith("msg-") and m.created_at for m in ctx.queue)
    assert {b.label: b.value for b in ctx.blocks}["human"] == "Name: Bo"
    assert ctx.summary == "so far nothing" and ctx.last_memory_edit_at
    assert ctx.turn.turn_id == "turn1" and ctx.turn.heartbeat_pending
    # archival_count is the index's count (the step's inserts went through InsertArchival): none here.
    assert ctx.memory_warning_sent and ctx.archival_count == 0 and ctx.recall_count == 2
    assert ctx.last_user_message_at == ctx.queue[0].created_at
    assert [e.id for e in ctx.pending_events] == ["e1"] and ctx.last_step_id == "turn1:1"
    assert not ctx.commit_outbox  # internal

    first_id = ctx.queue[0].id
    resp2 = await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=ctx.revision, step_id="turn1:2",
        messages=[msg("assistant", "reply")], evict_message_ids=[first_id]))
    ctx2 = await memory_stub.GetContext(ref)
    assert ctx2.revision == resp2.revision
    assert [m.text for m in ctx2.queue] == ["thinking", "reply"]
    assert ctx2.evicted_total == 1 and not ctx2.pending_events and not ctx2.memory_warning_sent
    assert ctx2.summary == "so far nothing"  # summary_changed=false keeps it


async def test_commit_step_duplicate_is_not_applied(memory_stub):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    req = memory_pb2.CommitStepRequest(ref=ref, expected_revision=state.revision, step_id="t:1",
                                       messages=[msg("user", "once")])
    first = await memory_stub.CommitStep(req)
    again = await memory_stub.CommitStep(req)  # redelivered: same step id, stale revision
    assert again.duplicate and again.revision == first.revision
    ctx = await memory_stub.GetContext(ref)
    assert [m.text for m in ctx.queue] == ["once"] and ctx.revision == first.revision


async def test_commit_step_cas_race_exactly_one_wins(memory_stub):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    n = 8
    results = await asyncio.gather(*[
        memory_stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=state.revision, step_id=f"w{i}:1",
            messages=[msg("assistant", f"writer {i}")]))
        for i in range(n)], return_exceptions=True)
    wins = [r for r in results if isinstance(r, memory_pb2.CommitStepResponse)]
    losses = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and len(losses) == n - 1
    assert all(e.code() == grpc.StatusCode.ABORTED and "revision conflict" in e.details() for e in losses)
    ctx = await memory_stub.GetContext(ref)
    assert len(ctx.queue) == 1 and ctx.revision == wins[0].revision


async def test_commit_step_block_over_limit_is_refused(memory_stub):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=state.revision, step_id="s:1",
            blocks=[common_pb2.MemoryBlock(label="persona", value="y" * 2500)]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2500" in err.value.details() and "2000" in err.value.details()
    ctx = await memory_stub.GetContext(ref)
    assert ctx.revision == state.revision  # nothing applied


async def test_committed_messages_reach_the_commit_log(memory_stub, nc):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="s:1",
        messages=[msg("user", "a"), msg("assistant", "b")]))
    js = nc.jetstream()
    sub = await js.subscribe(subjects.messages_subject("t1", state.config.id), ordered_consumer=True)
    record = await sub.next_msg(timeout=5)
    await sub.unsubscribe()
    assert [m.text for m in read_record(record.data, record.headers)] == ["a", "b"]  # one record per step


async def test_core_memory_edits(memory_stub):
    state = await create(memory_stub, human="Name: Ana")
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    b = await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="human", op="append",
                                                                    value="Likes tea"))
    assert b.value == "Name: Ana\nLikes tea"
    b = await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="human", op="replace",
                                                                    old="tea", value="coffee"))
    assert b.value == "Name: Ana\nLikes coffee"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="human", op="replace",
                                                                    old="juice", value="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not found" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="human", op="append",
                                                                    value="z" * 2000))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    b = await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=ref, label="notes", value="n", limit=10))
    assert b.limit == 10
    core = await memory_stub.GetCoreMemory(ref)
    assert [x.label for x in core.blocks] == ["persona", "human", "notes"]
    assert core.last_memory_edit_at


async def test_pop_and_rewrite(memory_stub):
    state = await create(memory_stub)
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    reply = common_pb2.Message(role="assistant", text="thought", tokens=21, tool_calls=[
        common_pb2.ToolCall(id="c1", name="send_message", arguments='{"message": "hi there"}')])
    await memory_stub.CommitStep(memory_pb2.CommitStepRequest(
        ref=ref, expected_revision=state.revision, step_id="s:1",
        messages=[msg("user", "hi"), reply, msg("tool", "ok", tool_call_id="c1", name="send_message")]))
    rewritten = await memory_stub.RewriteMessage(memory_pb2.RewriteMessageRequest(ref=ref, text="hello!"))
    assert '"hello!"' in rewritten.tool_calls[0].arguments
    assert rewritten.tokens == 0  # its cached token count no longer holds: counted again
    popped = await memory_stub.PopMessages(memory_pb2.PopMessagesRequest(ref=ref, count=2))
    assert [m.role for m in popped.removed] == ["assistant", "tool"]
    ctx = await memory_stub.GetContext(ref)
    assert [m.text for m in ctx.queue] == ["hi"]


async def test_templates(memory_stub):
    shipped = await memory_stub.GetTemplate(memory_pb2.TemplateRef(tenant_id="tt", kind="persona", name="companion"))
    assert "companion" in shipped.text
    await memory_stub.PutTemplate(memory_pb2.PutTemplateRequest(
        tenant_id="tt", template=common_pb2.Template(kind="persona", name="companion", text="Mine.")))
    own = await memory_stub.GetTemplate(memory_pb2.TemplateRef(tenant_id="tt", kind="persona", name="companion"))
    assert own.text == "Mine." and own.updated_at
    other = await memory_stub.GetTemplate(memory_pb2.TemplateRef(tenant_id="tu", kind="persona", name="companion"))
    assert other.text != "Mine."
    await memory_stub.PutTemplate(memory_pb2.PutTemplateRequest(
        tenant_id="tt", template=common_pb2.Template(kind="human", name="bob", text="Name: Bob")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.PutTemplate(memory_pb2.PutTemplateRequest(
            tenant_id="tt", create_only=True, template=common_pb2.Template(kind="human", name="bob", text="x")))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    listed = await memory_stub.ListTemplates(memory_pb2.ListTemplatesRequest(tenant_id="tt", kind="human"))
    assert {t.name for t in listed.templates} == {"basic", "bob"}
    state = await create(memory_stub, "tt", human_name="bob")
    assert state.blocks[1].value == "Name: Bob"
    await memory_stub.DeleteTemplate(memory_pb2.TemplateRef(tenant_id="tt", kind="human", name="bob"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.GetTemplate(memory_pb2.TemplateRef(tenant_id="tt", kind="human", name="bob"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.GetTemplate(memory_pb2.TemplateRef(tenant_id="tt", kind="robot", name="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_tenant_isolation_stage1(memory_stub):
    state = await create(memory_stub, "owner")
    foreign = Ref(tenant_id="intruder", agent_id=state.config.id)
    calls = [
        memory_stub.GetAgent(foreign), memory_stub.GetContext(foreign), memory_stub.GetCoreMemory(foreign),
        memory_stub.DeleteAgent(foreign),
        memory_stub.CommitStep(memory_pb2.CommitStepRequest(ref=foreign, expected_revision=state.revision,
                                                            step_id="x:1", messages=[msg("user", "x")])),
        memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=foreign, label="human", value="x")),
        memory_stub.UpdateAgent(memory_pb2.UpdateAgentRequest(ref=foreign, update_mask=["name"])),
        memory_stub.PopMessages(memory_pb2.PopMessagesRequest(ref=foreign)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await memory_stub.ListAgents(memory_pb2.ListAgentsRequest(tenant_id="intruder"))
    assert listed.total == 0
    still = await memory_stub.GetAgent(Ref(tenant_id="owner", agent_id=state.config.id))
    assert still.revision == state.revision


async def test_bad_refs_are_invalid_argument(memory_stub):
    for ref in (Ref(tenant_id="", agent_id="a"), Ref(tenant_id="t.x", agent_id="a"), Ref(tenant_id="t", agent_id="a*")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await memory_stub.GetAgent(ref)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_invalid_config_is_refused(memory_stub):
    bad = [common_pb2.AgentConfig(context_window=-1),
           common_pb2.AgentConfig(limits=common_pb2.AgentLimits(memory_warning_fraction=1.5)),
           common_pb2.AgentConfig(limits=common_pb2.AgentLimits(compaction_trigger_fraction=0.5,
                                                                compaction_target_fraction=0.6)),
           common_pb2.AgentConfig(id="bad id")]
    for config in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await create(memory_stub, config=config)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    state = await create(memory_stub, config=common_pb2.AgentConfig(id="my-agent-1"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(memory_stub, config=common_pb2.AgentConfig(id="my-agent-1"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    ref = Ref(tenant_id="t1", agent_id=state.config.id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.UpdateAgent(memory_pb2.UpdateAgentRequest(
            ref=ref, update_mask=["embedding_dim"], config=common_pb2.AgentConfig(embedding_dim=3)))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.ListAgents(memory_pb2.ListAgentsRequest(tenant_id="t1", page_size=1000))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await memory_stub.DeleteAgent(ref)


async def test_commit_step_publishes_the_steps_events_once_durable(memory_stub, nc):
    state = await create(memory_stub, tenant="ev")
    agent = state.config.id
    ref = Ref(tenant_id="ev", agent_id=agent)
    js = nc.jetstream()
    sub = await js.subscribe(subjects.events_subject("ev", agent), ordered_consumer=True)
    events = [common_pb2.Event(type="assistant_message", id="t1:1:0",
                               assistant_message=common_pb2.AssistantMessage(text="hi")),
              common_pb2.Event(type="turn_completed", id="t1:1:1")]
    req = memory_pb2.CommitStepRequest(ref=ref, expected_revision=state.revision, step_id="t1:1",
                                       messages=[msg("user", "hello")], events=events)
    first = await memory_stub.CommitStep(req)
    got = [common_pb2.Event.FromString((await sub.next_msg(timeout=5)).data) for _ in events]
    assert [(e.id, e.type, e.tenant_id, e.agent_id) for e in got] == [
        ("t1:1:0", "assistant_message", "ev", agent), ("t1:1:1", "turn_completed", "ev", agent)]
    assert got[0].assistant_message.text == "hi"
    # A retried commit (its reply lost) publishes the events again: the stream drops the copies.
    again = await memory_stub.CommitStep(req)
    assert again.duplicate and again.revision == first.revision
    subject = subjects.events_subject("ev", agent)
    info = await js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    assert info.state.subjects == {subject: 2}
    # Events of another agent are refused, and nothing of the step is applied.
    bad = memory_pb2.CommitStepRequest(ref=ref, expected_revision=first.revision, step_id="t2:1",
                                       messages=[msg("user", "lost?")],
                                       events=[common_pb2.Event(type="usage", id="t2:1:0", agent_id="agent-other")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await memory_stub.CommitStep(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "another agent" in err.value.details()
    ctx = await memory_stub.GetContext(ref)
    assert [m.text for m in ctx.queue] == ["hello"] and ctx.revision == first.revision
    await sub.unsubscribe()


async def test_each_get_context_is_a_new_state_of_its_caller(memory_service, memory_stub):
    """MemoryServicer.LOCAL_FRESH_RESPONSES hands GetContext's state to in-process callers uncopied:
    that holds only while every read makes its own state object."""
    from mnemo.common.localrpc import LocalContext
    from mnemo.memory.server import MemoryServicer

    state = await create(memory_stub)
    servicer, ref = MemoryServicer(memory_service), common_pb2.AgentRef(tenant_id="t1", agent_id=state.config.id)
    assert "GetContext" in servicer.LOCAL_FRESH_RESPONSES
    first = await servicer.GetContext(ref, LocalContext(5))
    first.summary = "changed by a caller"
    first.queue.add(role="user", text="not committed")
    second = await servicer.GetContext(ref, LocalContext(5))
    assert second is not first and second.summary == state.summary and len(second.queue) == len(state.queue)
