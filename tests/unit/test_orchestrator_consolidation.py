"""Memory consolidation without I/O: when an agent is due, what the model's answer may change, the
step it commits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mnemo.orchestrator import consolidation as c
from mnemo.orchestrator.context import metadata_section
from mnemo.v1 import common_pb2, llm_pb2, memory_pb2

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state(turns: int = 0, runs: int = 0, last_turn: datetime | None = None, **cfg: object) -> common_pb2.AgentState:
    s = common_pb2.AgentState(config=common_pb2.AgentConfig(
        id="a1", tenant_id="t1", model="m", consolidation=common_pb2.ConsolidationConfig(enabled=True, **cfg)))
    s.consolidation.turns_since, s.consolidation.runs = turns, runs
    if last_turn is not None:
        s.consolidation.last_turn_at = iso(last_turn)
    s.blocks.add(label="human", value="x" * 90, limit=100)
    s.blocks.add(label="persona", value="short", limit=100)
    s.blocks.add(label="project", value="y" * 99, limit=100, shared_id="block-1")
    s.summary = "Old summary."
    return s


def request(reason: str = "turn", runs: int = 0, at: datetime = NOW) -> common_pb2.ConsolidationRequest:
    return common_pb2.ConsolidationRequest(tenant_id="t1", agent_id="a1", reason=reason, runs=runs,
                                           created_at=iso(at))


def test_due_after_turns_idle_requested_or_not_at_all() -> None:
    assert c.due(state(turns=20), request(), NOW) == c.Due("after_turns")   # the default N
    assert c.due(state(turns=2, after_turns=3), request(), NOW) == c.Due()
    assert c.due(state(turns=3, after_turns=3), request(), NOW).reason == "after_turns"
    assert c.due(state(turns=3, runs=1, after_turns=3), request(runs=0), NOW) == c.Due()  # ran since
    idle = state(turns=1, after_turns=-1, idle_minutes=10, last_turn=NOW - timedelta(minutes=4))
    wait = c.due(idle, request(at=NOW - timedelta(minutes=4)), NOW)
    assert wait.reason is None and abs(wait.wait - 360) < 1
    assert c.due(idle, request(at=NOW - timedelta(minutes=4)), NOW + timedelta(minutes=7)).reason == "idle"
    assert c.due(idle, request(at=NOW - timedelta(minutes=9)), NOW) == c.Due()   # a later turn asked again
    assert c.due(state(turns=0), request("requested"), NOW).reason == "requested"
    off = state(turns=50)
    off.config.consolidation.enabled = False
    assert c.due(off, request("requested"), NOW) == c.Due()


def test_the_model_sees_own_blocks_near_their_limit_and_may_change_only_those() -> None:
    s = state()
    group = memory_pb2.DuplicateGroup(similarity=0.97, passages=[
        common_pb2.Passage(id="p1", text="cat Miso"), common_pb2.Passage(id="p2", text="Cat Miso.")])
    task = c.task_of(s, [group, memory_pb2.DuplicateGroup(passages=[common_pb2.Passage(id="lone")])])
    assert [b.label for b in task.blocks] == ["human"] and len(task.groups) == 1   # not persona, not shared project
    req = c.chat_request(task, s, "m")
    assert req.tool_choice == c.TOOL_NAME and json.loads(req.messages[1].content)["blocks"][0]["limit"] == 100
    reply = llm_pb2.ChatResponse(message=llm_pb2.ChatMessage(tool_calls=[common_pb2.ToolCall(
        name=c.TOOL_NAME, arguments=json.dumps({
            "blocks": [{"label": "human", "value": "kept"}, {"label": "project", "value": "no"},
                       {"label": "persona", "value": "no"}],
            "summary": "New summary.",
            "merges": [{"keep_id": "p1", "drop_ids": ["p2", "p1", "elsewhere"]}, {"keep_id": "zz", "drop_ids": ["p1"]}],
        }))]))
    plan = c.parse_reply(reply, task)
    assert plan.blocks == {"human": "kept"} and plan.summary == "New summary."
    assert [(m.keep_id, list(m.drop_ids)) for m in plan.merges] == [("p1", ["p2"])]
    assert len(plan.notes) == 3
    too_long = llm_pb2.ChatResponse(message=llm_pb2.ChatMessage(tool_calls=[common_pb2.ToolCall(
        name=c.TOOL_NAME, arguments=json.dumps({"blocks": [{"label": "human", "value": "z" * 101}]}))]))
    assert c.parse_reply(too_long, task).blocks == {}
    assert c.parse_reply(llm_pb2.ChatResponse(), task).notes == ["the model made no consolidate_memory call"]


def test_the_step_carries_the_diff_the_status_and_the_checkpoint() -> None:
    s = state(turns=5, runs=2)
    s.revision = 7
    task = c.task_of(s, [])
    plan = c.Plan(blocks={"human": "kept"}, summary="New summary.")
    commit = c.commit_of(s, task, plan, checkpoint_id="ckpt-1", reason="after_turns", step_id="consolidation-a1-3:1",
                         model="m", now=iso(NOW))
    assert commit.expected_revision == 7 and commit.step_id == "consolidation-a1-3:1"
    assert [(b.label, b.value) for b in commit.blocks] == [("human", "kept")]
    assert commit.summary_changed and commit.summary == "New summary." and not commit.HasField("turn")
    (event,) = commit.events
    assert event.type == "memory_consolidated" and event.turn_id == "consolidation-a1-3"
    body = event.memory_consolidated
    assert body.checkpoint_id == "ckpt-1" and "-" + "x" * 90 in body.diff and "+kept" in body.diff
    assert "+New summary." in body.diff
    status = commit.consolidation
    assert (status.turns_since, status.runs, status.blocks_rewritten, status.summary_refreshed) == (0, 3, 1, True)
    s.consolidation.CopyFrom(status)
    assert "- memory last consolidated: " in metadata_section(s, iso(NOW))
