"""The step planner without I/O: budget edges, compaction, memory pressure, overflow retry, stop reasons.

Token counts come from a word counter (a message costs 4 tokens plus one per word of its content), so
the budgets below are exact. Windows are set relative to the measured prompt of the same state.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mnemo.orchestrator import packing
from mnemo.orchestrator.calls import CallsOutcome
from mnemo.orchestrator.context import ContextAssembler, RenderCache
from mnemo.orchestrator.limits import Limits
from mnemo.orchestrator.planner import (
    COMPACTION_ALERT,
    CallModel,
    Commit,
    Compact,
    Decision,
    RunCalls,
    StepPlanner,
    TurnTotals,
    stop_reason,
)
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.orchestrator.turn_start import start_turn, step_inputs
from mnemo.v1 import common_pb2, llm_pb2, steps_pb2

NOW = "2026-03-02T09:00:00.000Z"
WORDS = " ".join(["word"] * 100)


def count_words(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    return sum(4 + len((m.get("content") or "").split()) for m in messages)


ASSEMBLER = ContextAssembler(TokenCounter(count=count_words))


def limits(**overrides: Any) -> Limits:
    values: dict[str, Any] = dict(
        max_steps=10, max_tokens_per_turn=1_000_000, function_result_max_chars=3000,
        memory_warning_fraction=0.70, compaction_trigger_fraction=0.90, compaction_target_fraction=0.50,
        keep_last_messages=2, reserved_completion_tokens=0, loop_repeats=3)
    return Limits(**{**values, **overrides})


def msg(i: int, role: str, text: str = WORDS, **fields: Any) -> common_pb2.Message:
    return common_pb2.Message(id=f"m{i}", role=role, text=text, created_at=NOW, **fields)


def call_msg(i: int, *call_ids: str) -> common_pb2.Message:
    return msg(i, "assistant", tool_calls=[common_pb2.ToolCall(id=c, name="conversation_search",
                                                               arguments='{"query": "x"}') for c in call_ids])


def conversation(pairs: int) -> list[common_pb2.Message]:
    """user, assistant(call), tool return — `pairs` times."""
    out: list[common_pb2.Message] = []
    for p in range(pairs):
        out += [msg(3 * p, "user"), call_msg(3 * p + 1, f"c{p}"),
                msg(3 * p + 2, "tool", tool_call_id=f"c{p}", name="conversation_search")]
    return out


def agent(queue: list[common_pb2.Message], *, warning_sent: bool = False, summarizer: str = "",
          summary: str = "") -> common_pb2.AgentState:
    return common_pb2.AgentState(
        config=common_pb2.AgentConfig(model="m", summarizer_model=summarizer), queue=queue, revision=7,
        summary=summary, memory_warning_sent=warning_sent,
        blocks=[common_pb2.MemoryBlock(label="human", value="likes tea", limit=100)])


TURN = common_pb2.TurnRequest(turn_id="t1", tenant_id="ten", agent_id="a1", message="hello there")


def planner(state: common_pb2.AgentState, window: int, lim: Limits | None = None, step: int = 1,
            progress: common_pb2.TurnProgress | None = None, totals: TurnTotals | None = None) -> StepPlanner:
    return StepPlanner(turn=TURN, state=state, progress=progress or common_pb2.TurnProgress(turn_id="t1"),
                       limits=lim or limits(), totals=totals or TurnTotals(), step=step, window=window,
                       preset="You are a test agent.", now=NOW, session_gap=3600.0, assembler=ASSEMBLER,
                       render_cache=RenderCache())


def prompt_tokens(state: common_pb2.AgentState, step: int = 1) -> int:
    """The prompt of `state`'s step measured with an unlimited window."""
    first = planner(state, 10**9, step=step).start()
    assert isinstance(first, CallModel)
    return first.prompt_tokens


def reply(*calls: tuple[str, dict[str, Any]], total_tokens: int = 30) -> llm_pb2.ChatResponse:
    return llm_pb2.ChatResponse(
        model="m", usage=common_pb2.TokenUsage(prompt_tokens=20, completion_tokens=10, total_tokens=total_tokens),
        message=llm_pb2.ChatMessage(role="assistant", content="thinking", tool_calls=[
            common_pb2.ToolCall(id=f"x{i}", name=n, arguments=json.dumps(a)) for i, (n, a) in enumerate(calls)]))


def alerts(p: StepPlanner) -> list[str]:
    return [e.system_alert.text for e in p.events.events if e.type == "system_alert"]


def event_types(commit: Commit) -> list[str]:
    return [e.type for e in commit.request.events]


# ---- context within budget ---------------------------------------------------------------------
@pytest.mark.parametrize("fraction,at_or_above,sent_before,want_alert,sent_after", [
    (0.70, False, False, False, False),   # just under 70 %: nothing
    (0.70, True, False, True, True),      # at 70 %: one alert
    (0.70, True, True, False, True),      # still above: no second alert
    (0.50, True, True, False, False),     # fell below: the next crossing alerts again
    (0.85, True, False, True, True),
])
def test_memory_warning_once_per_crossing(fraction, at_or_above, sent_before, want_alert, sent_after):
    state = agent(conversation(4), warning_sent=sent_before)
    p0 = prompt_tokens(state)
    window = math.floor(p0 / fraction) + (0 if at_or_above else 1)
    p = planner(state, window)
    decision = p.start()
    assert isinstance(decision, CallModel)
    assert p.warning_sent is sent_after
    got = [a for a in alerts(p) if a.startswith("Memory pressure")]
    assert len(got) == (1 if want_alert else 0)
    if want_alert:
        assert f"{int(100 * p0 / window)}%" in got[0]
        assert p.inputs[-1].role == "system" and "Memory pressure" in p.inputs[-1].text
        assert decision.prompt_tokens > p0  # the alert is part of the prompt
    else:
        assert decision.prompt_tokens == p0
    last = decision.request.messages[-1]
    assert ("Memory pressure" in last.content) is want_alert


@pytest.mark.parametrize("extra,want", [(0, CallModel), (1, Commit)])
def test_budget_edge_fits_exactly_or_overflows(extra, want):
    # Nothing to evict (the queue is within keep_last): over budget by one token is an overflow.
    state = agent(conversation(1)[:2])
    p0 = prompt_tokens(state)
    lim = limits(memory_warning_fraction=2.0, compaction_trigger_fraction=2.0, reserved_completion_tokens=100)
    p = planner(state, p0 - extra + 100, lim)
    decision = p.start()
    assert isinstance(decision, want)
    if isinstance(decision, Commit):
        assert decision.stop_reason == "context_overflow"
        assert decision.request.turn.completed and decision.request.turn.stop_reason == "context_overflow"
        assert event_types(decision) == ["turn_completed"]
        assert [m.role for m in decision.request.messages] == ["user"]  # the input is kept


def test_compaction_at_90_percent_down_to_the_target():
    queue = conversation(6)
    state = agent(queue)
    p0 = prompt_tokens(state)
    lim = limits(memory_warning_fraction=2.0)
    decision = planner(state, math.floor(p0 / 0.95), lim).start()
    assert isinstance(decision, Compact)
    decision = planner(state, math.floor(p0 / 0.90) + 1, lim).start()
    assert isinstance(decision, CallModel)  # under the trigger: no compaction
    window = math.floor(p0 / 0.90)
    p = planner(state, window, lim)
    decision = p.start()
    assert isinstance(decision, Compact)
    k = len(decision.evicted)
    assert decision.evicted == state.queue[:k] and p.queue == state.queue[k:]
    assert decision.model == "m" and decision.window == window and decision.summary == ""
    after = p.compacted("they talked about words", spent=40)
    assert isinstance(after, CallModel)
    assert after.prompt_tokens <= window * 0.5 + 4 + 104  # freed down to the target (within a message)
    assert alerts(p) == [COMPACTION_ALERT.format(k=k)]
    assert p.progress.tokens_used == 40
    assert "they talked about words" in after.request.messages[0].content
    assert len(after.request.messages) == 1 + len(queue) - k + 1  # system, kept queue, the user input


@pytest.mark.parametrize("roles,keep_last", [
    (["user", "assistant", "tool", "tool", "user", "assistant", "tool", "user"], 1),
    (["user", "assistant", "tool", "tool", "tool", "assistant", "tool", "user", "assistant", "tool"], 2),
    (["assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant", "tool"], 3),
    (["user", "user", "assistant", "tool", "tool", "tool", "tool", "tool"], 4),
])
def test_compaction_never_splits_a_call_from_its_return(roles, keep_last):
    queue: list[common_pb2.Message] = []
    open_call = ""
    for i, role in enumerate(roles):
        if role == "assistant":
            open_call = f"c{i}"
            queue.append(call_msg(i, open_call))
        elif role == "tool":
            queue.append(msg(i, "tool", tool_call_id=open_call, name="conversation_search"))
        else:
            queue.append(msg(i, role))
    state = agent(queue)
    lim = limits(memory_warning_fraction=2.0, keep_last_messages=keep_last)
    p = planner(state, math.floor(prompt_tokens(state) / 0.95), lim)
    decision = p.start()
    assert isinstance(decision, Compact)
    kept = p.queue
    assert len(kept) >= min(keep_last, len(queue)) and kept[0].role != "tool"
    kept_calls = {c.id for m in kept for c in m.tool_calls}
    assert all(m.tool_call_id in kept_calls for m in kept if m.role == "tool")


def test_forced_compaction_when_over_budget_then_fit_or_overflow():
    queue = conversation(5)
    state = agent(queue, summarizer="small")
    p0 = prompt_tokens(state)
    # Trigger and warning disabled: only the budget forces the compaction.
    lim = limits(memory_warning_fraction=2.0, compaction_trigger_fraction=2.0, keep_last_messages=3)
    p = planner(state, p0 - 1, lim)
    decision = p.start()
    assert isinstance(decision, Compact) and decision.model == "small" and decision.window == 0
    assert isinstance(p.compacted("s", 5), CallModel)
    # A summary that is itself too long leaves the context over budget: the turn stops.
    p = planner(state, p0 - 1, lim)
    assert isinstance(p.start(), Compact)
    stopped = p.compacted(WORDS * 20, 5)
    assert isinstance(stopped, Commit) and stopped.stop_reason == "context_overflow"
    assert stopped.request.summary_changed and stopped.request.evict_message_ids
    assert event_types(stopped) == ["system_alert", "turn_completed"]


# ---- the model call ----------------------------------------------------------------------------
def test_provider_overflow_compacts_once_and_retries_once():
    state = agent(conversation(5))
    p = planner(state, 10**6)
    first = p.start()
    assert isinstance(first, CallModel)
    forced = p.overflowed()
    assert isinstance(forced, Compact) and forced.evicted  # forced: evicts although under the target
    retry = p.compacted("summary", 7)
    assert isinstance(retry, CallModel) and retry.prompt_tokens < first.prompt_tokens
    stopped = p.overflowed()
    assert isinstance(stopped, Commit) and stopped.stop_reason == "context_overflow"
    assert event_types(stopped) == ["system_alert", "turn_completed"]
    done = stopped.request.events[-1].turn_completed
    assert done.stop_reason == "context_overflow" and done.usage.context_tokens == retry.prompt_tokens


def test_provider_overflow_with_nothing_to_evict_retries_as_is():
    state = agent([msg(0, "user")])
    p = planner(state, 10**6)
    first = p.start()
    again = p.overflowed()
    assert isinstance(again, CallModel) and again.request == first.request
    stopped = p.overflowed()
    assert isinstance(stopped, Commit) and stopped.stop_reason == "context_overflow"
    assert not stopped.request.evict_message_ids and not stopped.request.summary_changed


def test_model_failure_fails_the_step_with_the_status_name():
    p = planner(agent([]), 10**6)
    p.start()
    commit = p.model_failed("provider down", "UNAVAILABLE")
    assert commit.stop_reason == "error" and event_types(commit) == ["turn_failed"]
    failed = commit.request.events[0].turn_failed
    assert failed.code == "UNAVAILABLE" and failed.error == "model call failed: provider down"
    assert commit.request.turn.completed and commit.request.turn.stop_reason == "error"


def test_request_carries_the_context_and_the_turn_metadata():
    queue = conversation(2)
    p = planner(agent(queue), 10**6, limits(reserved_completion_tokens=77))
    decision = p.start()
    assert isinstance(decision, CallModel)
    req = decision.request
    assert (req.model, req.purpose, req.tool_choice, req.max_tokens) == ("m", "agent", "auto", 77)
    assert (req.tenant_id, req.agent_id, req.turn_id) == ("ten", "a1", "t1")
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool", "user", "assistant",
                                              "tool", "user"]
    assert "likes tea" in req.messages[0].content and len(req.tools) == 8
    assert p.assembled.queue is p.queue  # the queue is not copied again per assembly


# ---- functions, heartbeats, commit -------------------------------------------------------------
def outcome(heartbeat: bool, loop: bool = False) -> CallsOutcome:
    return CallsOutcome(results=[], heartbeat=heartbeat, loop_detected=loop, recent=["fp"])


@pytest.mark.parametrize("heartbeat,loop,step,max_steps,tokens,max_tokens,want", [
    (False, False, 1, 10, 0, 100, "end_turn"),
    (True, True, 1, 10, 0, 100, "loop_detected"),
    (False, True, 1, 10, 0, 100, "loop_detected"),
    (True, False, 3, 3, 0, 100, "max_steps"),
    (True, False, 2, 3, 0, 100, None),
    (True, False, 2, 3, 100, 100, "token_budget"),
    (True, False, 2, 3, 99, 100, None),
    (True, False, 3, 3, 100, 100, "max_steps"),
])
def test_stop_reason(heartbeat, loop, step, max_steps, tokens, max_tokens, want):
    lim = limits(max_steps=max_steps, max_tokens_per_turn=max_tokens)
    assert stop_reason(outcome(heartbeat, loop), step, tokens, lim) == want


@pytest.mark.parametrize("heartbeat,step,max_steps,cap,want", [
    (True, 1, 10, 1000, None),
    (False, 1, 10, 1000, "end_turn"),
    (True, 2, 2, 1000, "max_steps"),
    (True, 1, 10, 30, "token_budget"),   # the reply's 30 tokens reach the cap
])
def test_step_commit(heartbeat, step, max_steps, cap, want):
    state = agent([msg(0, "user"), msg(1, "system", text=packing.system_alert("x", NOW))])
    totals = TurnTotals()
    p = planner(state, 10**6, limits(max_steps=max_steps, max_tokens_per_turn=cap), step=step,
                progress=common_pb2.TurnProgress(turn_id="t1", steps_done=step - 1, recent_calls=["old"]),
                totals=totals)
    call_model = p.start()
    assert isinstance(call_model, CallModel)
    run = p.replied(reply(("send_message", {"message": "hi", "request_heartbeat": heartbeat})))
    assert isinstance(run, RunCalls)
    assert run.step_id == f"t1:{step}" and run.recent == ["old"] and run.events is p.events
    assert [c.name for c in run.assistant.tool_calls] == ["send_message"]
    tool = common_pb2.Message(role="tool", text=packing.function_result(True, "message sent", NOW),
                              tool_call_id="x0", turn_id="t1", step=step)
    commit = p.called(CallsOutcome([tool], heartbeat=heartbeat, recent=["old", "new"]))
    assert commit.stop_reason == want
    req, progress = commit.request, commit.request.turn
    assert req.step_id == f"t1:{step}" and req.expected_revision == 7
    assert progress.steps_done == step and list(progress.recent_calls) == ["old", "new"]
    assert progress.heartbeat_pending is (want is None) and progress.completed is (want is not None)
    assert progress.stop_reason == (want or "") and progress.tokens_used == 30
    assert event_types(commit) == ["inner_thought", "usage", *([] if want is None else ["turn_completed"])]
    assert [m.role for m in req.messages] == [*(["user"] if step == 1 else []), "assistant", "tool"]
    assert all(m.tokens > 0 for m in req.messages)  # counted once, stored with the message
    assert (totals.prompt_tokens, totals.completion_tokens) == (20, 10)
    assert totals.context_tokens == call_model.prompt_tokens


def test_calls_without_ids_get_stable_ones():
    p = planner(agent([]), 10**6, step=2)
    p.start()
    response = reply(("send_message", {"message": "a"}), ("send_message", {"message": "b"}))
    for tc in response.message.tool_calls:
        tc.id = ""
    run = p.replied(response)
    assert [c.id for c in run.assistant.tool_calls] == ["call-t1-2-0", "call-t1-2-1"]


def test_core_memory_edits_and_the_summary_travel_in_the_commit():
    state = agent(conversation(4))
    p = planner(state, math.floor(prompt_tokens(state) / 0.95), limits(memory_warning_fraction=2.0))
    compact = p.start()
    assert isinstance(compact, Compact)
    assert isinstance(p.compacted("new summary", 3), CallModel)
    run = p.replied(reply(("core_memory_append", {"label": "human", "content": "x"})))
    run.memory.set_value("human", "likes coffee")  # what the executor does
    commit = p.called(outcome(False))
    req = commit.request
    assert [b.value for b in req.blocks] == ["likes coffee"] and state.blocks[0].value == "likes tea"
    assert req.summary_changed and req.summary == "new summary"
    assert list(req.evict_message_ids) == [m.id for m in compact.evicted]
    assert req.turn.tokens_used == 3 + 30


def run_to_commit(p: StepPlanner, replies: list[Any]) -> tuple[Commit, list[Decision]]:
    """Answer each decision from `replies` (a response, "overflow" or a summary string) until the commit."""
    seen: list[Decision] = []
    decision = p.start()
    while not isinstance(decision, Commit):
        seen.append(decision)
        if isinstance(decision, Compact):
            decision = p.compacted(replies.pop(0), 1)
        elif isinstance(decision, CallModel):
            r = replies.pop(0)
            decision = p.overflowed() if r == "overflow" else p.replied(r)
        else:
            decision = p.called(outcome(False))
    return decision, seen


def test_a_whole_step_with_a_provider_overflow():
    p = planner(agent(conversation(5)), 10**6)
    commit, seen = run_to_commit(p, ["overflow", "s1", reply(("send_message", {"message": "ok"}))])
    assert [type(d) for d in seen] == [CallModel, Compact, CallModel, RunCalls]
    assert commit.stop_reason == "end_turn"
    assert event_types(commit) == ["system_alert", "inner_thought", "usage", "turn_completed"]


# ---- turn start and step inputs ----------------------------------------------------------------
@pytest.mark.parametrize("current,seq,want_progress,republish", [
    (common_pb2.TurnProgress(turn_id="t1", steps_done=2, completed=True), 5, None, True),
    (common_pb2.TurnProgress(turn_id="t1", steps_done=2, heartbeat_pending=True), 5, 2, True),
    (common_pb2.TurnProgress(turn_id="t0", turn_seq=9, completed=True), 5, None, False),
    (common_pb2.TurnProgress(turn_id="t0", turn_seq=4, completed=True), 5, 0, False),
    (common_pb2.TurnProgress(turn_id="t0", turn_seq=9, completed=True), 0, 0, False),
])
def test_start_turn(current, seq, want_progress, republish):
    start = start_turn(TURN, seq, common_pb2.AgentState(turn=current))
    assert start.republish is republish
    if want_progress is None:
        assert start.progress is None
    else:
        assert start.progress is not None and start.progress.turn_id == "t1"
        assert start.progress.steps_done == want_progress
        if want_progress == 0:
            assert start.progress.turn_seq == seq


def test_step_inputs():
    away = common_pb2.AgentState(last_user_message_at="2026-03-01T09:00:00Z")
    first = step_inputs(TURN, away, 1, NOW, session_gap=3600)
    assert [m.role for m in first] == ["system", "user"] and json.loads(first[0].text)["type"] == "login"
    assert [m.role for m in step_inputs(TURN, away, 1, NOW, session_gap=10**6)] == ["user"]
    alert = common_pb2.TurnRequest(turn_id="t1", role="system", message="reminder")
    assert json.loads(step_inputs(alert, common_pb2.AgentState(), 1, NOW, 3600)[0].text)["type"] == "system_alert"
    failed = common_pb2.AgentState(queue=[msg(0, "tool", text=packing.function_result(False, "bad"))])
    ok = common_pb2.AgentState(queue=[msg(0, "tool", text=packing.function_result(True, "fine"))])
    assert packing.HEARTBEAT_AFTER_ERROR in step_inputs(TURN, failed, 2, NOW, 3600)[0].text
    assert packing.HEARTBEAT_REQUESTED in step_inputs(TURN, ok, 2, NOW, 3600)[0].text
    event = common_pb2.AgentState(queue=[msg(0, "system", text=packing.system_alert("x"))])
    assert step_inputs(TURN, event, 2, NOW, 3600) == []


@pytest.mark.parametrize("heartbeat,want_stop", [(False, "end_turn"), (True, "heartbeat")])
def test_the_usage_event_breaks_the_context_down_and_times_the_step(heartbeat, want_stop):
    state = agent(conversation(2), summary="they talked about tea and chess")
    p = planner(state, 10**6, limits(reserved_completion_tokens=50, memory_warning_fraction=0.6))
    call_model = p.start()
    assert isinstance(call_model, CallModel)
    p.timing.model_latency_ms, p.timing.trace_id = 12.5, "ab" * 16   # what the driver fills in
    response = reply(("send_message", {"message": "hi", "request_heartbeat": heartbeat}))
    response.finish_reason = "tool_calls"
    p.replied(response)
    timing = steps_pb2.FunctionTiming(name="send_message", call_id="x0", status="ok", duration_ms=0.25)
    commit = p.called(CallsOutcome([], heartbeat=heartbeat, timings=[timing]))
    usage = next(e.usage for e in commit.request.events if e.type == "usage")
    c = usage.context
    prompt_sections = [c.system_instructions, c.function_schemas, c.memory_metadata, c.core_memory, c.summary,
                       c.message_queue]
    assert sum(prompt_sections) == call_model.prompt_tokens == usage.context_tokens
    asm = p.assembled
    assert c.message_queue == sum(asm.queue_tokens) + sum(asm.input_tokens) > 0
    assert c.summary > 0 and c.core_memory > 0 and c.memory_metadata > 0 and c.system_instructions > 0
    assert c.reserved_completion == 50
    assert (round(c.warning_fraction, 2), round(c.compaction_fraction, 2)) == (0.6, 0.9)
    t = usage.timing
    assert (t.model_latency_ms, t.trace_id, t.stop_reason, t.finish_reason) == (12.5, "ab" * 16, want_stop,
                                                                                 "tool_calls")
    assert [(f.name, f.status, f.duration_ms) for f in t.functions] == [("send_message", "ok", 0.25)]
    assert t.step_ms >= 0


def test_a_step_without_a_summary_has_no_summary_tokens():
    p = planner(agent([msg(0, "user")]), 10**6)
    p.start()
    p.replied(reply(("send_message", {"message": "hi", "request_heartbeat": False})))
    usage = next(e.usage for e in p.called(CallsOutcome([])).request.events if e.type == "usage")
    assert usage.context.summary == 0 and usage.context.message_queue > 0
