"""Tools without I/O: tool and rule validation, argument checks against JSON Schema, the turn's tool
set and its rules, the planner's pause, and the step that resolves a pending call."""

from __future__ import annotations

import json

import pytest

from mnemo.common import tool_specs
from mnemo.common.errors import InvalidArgument
from mnemo.orchestrator.calls import CallsOutcome, pending_call
from mnemo.orchestrator.context import RenderCache
from mnemo.orchestrator.functions import NAMES, FunctionError
from mnemo.orchestrator.pauses import PAUSED, deadline_after, seconds_until, timer_request
from mnemo.orchestrator.planner import CallModel, Commit, StepPlanner, TurnTotals
from mnemo.orchestrator.resolution import Resolution, RunApproved
from mnemo.orchestrator.tools import BUILTIN_ONLY, parse_custom, tool_set
from mnemo.v1 import common_pb2, llm_pb2
from tests.unit.test_orchestrator_planner import ASSEMBLER, NOW, TURN, agent, limits

SCHEMA = json.dumps({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer",
                                                                                          "minimum": 1}},
                     "required": ["city"], "additionalProperties": False})
WEATHER = common_pb2.ToolSpec(name="weather", description="d", parameters_json=SCHEMA, kind="client")


def config(*tools: common_pb2.ToolSpec, rules: list[common_pb2.ToolRule] | None = None) -> common_pb2.AgentConfig:
    return common_pb2.AgentConfig(model="m", tools=tools, tool_rules=rules or [])


# ---- specs and arguments -------------------------------------------------------------------------

def test_builtin_names_are_the_functions_names() -> None:
    assert set(NAMES) == tool_specs.BUILTIN_FUNCTIONS


@pytest.mark.parametrize("spec, reason", [
    (common_pb2.ToolSpec(name="send_message"), "built-in"),
    (common_pb2.ToolSpec(name="has space"), "characters"),
    (common_pb2.ToolSpec(name="t", parameters_json="{"), "not JSON"),
    (common_pb2.ToolSpec(name="t", parameters_json='{"type": "array"}'), "object"),
    (common_pb2.ToolSpec(name="t", parameters_json='{"type": "object", "properties": {"a": {"type": 5}}}'),
     "valid JSON Schema"),
    (common_pb2.ToolSpec(name="t", kind="shell"), "kind"),
    (common_pb2.ToolSpec(name="t", kind="mcp"), "server_id"),
])
def test_bad_tools_are_refused_with_the_reason(spec: common_pb2.ToolSpec, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        tool_specs.check_tool(spec)


def test_duplicates_and_rules() -> None:
    with pytest.raises(InvalidArgument, match="twice"):
        tool_specs.check_tools([WEATHER, WEATHER])
    with pytest.raises(InvalidArgument, match="two rules"):
        tool_specs.check_rules([common_pb2.ToolRule(tool="x"), common_pb2.ToolRule(tool="x", terminal=True)])
    with pytest.raises(InvalidArgument, match=">= 0"):
        tool_specs.check_rules([common_pb2.ToolRule(tool="x", max_calls_per_turn=-1)])
    tool_specs.check_tools([WEATHER, common_pb2.ToolSpec(name="empty")])  # no parameters: an empty object


def test_arguments_are_checked_against_the_schema() -> None:
    assert parse_custom("c1", WEATHER, '{"city": "Oslo", "days": 2}').args == {"city": "Oslo", "days": 2}
    for bad, reason in [('{"days": 2}', "'city' is a required property"),
                        ('{"city": "Oslo", "days": 0}', "days: 0 is less than the minimum"),
                        ('{"city": "Oslo", "x": 1}', "Additional properties"),
                        ('{"city": 1}', "city: 1 is not of type 'string'"),
                        ("{nope", "not valid JSON")]:
        with pytest.raises(FunctionError, match=reason):
            parse_custom("c1", WEATHER, bad)


# ---- the tool set and its rules --------------------------------------------------------------------

def test_an_agent_without_tools_shares_the_builtin_set() -> None:
    assert tool_set(common_pb2.AgentConfig(model="m")) is BUILTIN_ONLY
    tools = tool_set(config(WEATHER), [common_pb2.ToolSpec(name="turn_only", kind="client")])
    assert set(tools.custom) == {"weather", "turn_only"}
    assert [t.name for t in tools.llm_tools][-2:] == ["weather", "turn_only"]
    assert tools.key != BUILTIN_ONLY.key and tool_set(config(WEATHER), [
        common_pb2.ToolSpec(name="turn_only", kind="client")]) is tools  # cached by content


def test_rules() -> None:
    rules = [common_pb2.ToolRule(tool="weather", run_first=True),
             common_pb2.ToolRule(tool="send_message", max_calls_per_turn=1),
             common_pb2.ToolRule(tool="archival_memory_insert", terminal=True, requires_approval=True)]
    tools = tool_set(config(WEATHER, rules=rules))
    assert tools.tool_choice(first_call=True) == "weather" and tools.tool_choice(first_call=False) == "auto"
    assert "must be called first" in (tools.rule_violation("send_message", []) or "")
    assert tools.rule_violation("weather", []) is None
    assert tools.rule_violation("send_message", ["weather"]) is None
    assert "at most 1" in (tools.rule_violation("send_message", ["weather", "send_message"]) or "")
    assert tools.is_terminal("archival_memory_insert") and tools.needs_approval("archival_memory_insert")
    assert not tools.is_terminal("weather")


# ---- the pause -------------------------------------------------------------------------------------

def planned_pause(state: common_pb2.AgentState, outcome: CallsOutcome) -> Commit:
    tools = tool_set(state.config)
    p = StepPlanner(turn=TURN, state=state, progress=common_pb2.TurnProgress(turn_id="t1"), limits=limits(),
                    totals=TurnTotals(), step=1, window=10**6, preset="p", now=NOW, session_gap=3600.0,
                    assembler=ASSEMBLER, render_cache=RenderCache(), tools=tools, pause_seconds=60)
    first = p.start()
    assert isinstance(first, CallModel)
    assert [t.name for t in first.request.tools][-1] == "weather"
    reply = llm_pb2.ChatResponse(message=llm_pb2.ChatMessage(role="assistant", tool_calls=[
        common_pb2.ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}')]))
    run = p.replied(reply)
    assert run.deadline == deadline_after(NOW, 60) and run.tools is tools
    return p.called(outcome)


def test_a_step_with_a_pending_call_pauses_the_turn() -> None:
    state = agent([])
    state.config.tools.append(WEATHER)
    call = pending_call(common_pb2.ToolCall(id="c1", name="weather", arguments='{"city": "Oslo"}'), "client", 1,
                        deadline_after(NOW, 60), NOW)
    commit = planned_pause(state, CallsOutcome(heartbeat=True, pending=[call], called=["weather"]))
    assert commit.stop_reason == PAUSED
    turn = commit.request.turn
    assert [c.call_id for c in turn.pending_calls] == ["c1"] and turn.called_tools == ["weather"]
    assert not turn.completed and not turn.heartbeat_pending and turn.stop_after_pending == ""
    types = [e.type for e in commit.request.events]
    assert types[-1] == "turn_paused" and "turn_completed" not in types
    roles = [m.role for m in commit.request.messages]
    assert roles == ["user", "assistant"]  # the call's return comes with its resolution


def test_a_terminal_call_beside_a_pending_one_ends_the_turn_after_the_pause() -> None:
    state = agent([])
    state.config.tools.append(WEATHER)
    call = pending_call(common_pb2.ToolCall(id="c1", name="weather"), "client", 1, "", NOW)
    commit = planned_pause(state, CallsOutcome(heartbeat=True, pending=[call], terminal=True))
    assert commit.stop_reason == PAUSED and commit.request.turn.stop_after_pending == "end_turn"


# ---- resolving -------------------------------------------------------------------------------------

def paused_state(*calls: common_pb2.PendingCall, rules: list[common_pb2.ToolRule] | None = None,
                 stop_after: str = "") -> common_pb2.AgentState:
    state = agent([])
    state.config.tools.append(WEATHER)
    state.config.tool_rules.extend(rules or [])
    state.turn.CopyFrom(common_pb2.TurnProgress(turn_id="t1", steps_done=1, pending_calls=calls,
                                                stop_after_pending=stop_after, tokens_used=50))
    return state


def resolution(state: common_pb2.AgentState, call_id: str, kind: str, text: str = "",
               now: str = NOW) -> Resolution:
    turn = common_pb2.TurnRequest(turn_id="t1", tenant_id="ten", agent_id="a1",
                                  resolution=common_pb2.CallResolution(call_id=call_id, kind=kind, text=text))
    return Resolution(turn=turn, state=state, tools=tool_set(state.config), limits=limits(), now=now, timeout=60)


def waiting(call_id: str, kind: str = "client", name: str = "weather") -> common_pb2.PendingCall:
    return common_pb2.PendingCall(call_id=call_id, name=name, arguments='{"city": "Oslo"}', kind=kind,
                                  deadline=deadline_after(NOW, 60), step=1)


def test_a_result_resolves_the_call_and_the_turn_goes_on() -> None:
    r = resolution(paused_state(waiting("c1")), "c1", "result", "sunny")
    assert not r.stale and r.wait == 0
    commit = r.start()
    assert isinstance(commit, Commit) and commit.stop_reason is None
    assert commit.request.turn.heartbeat_pending and not commit.request.turn.pending_calls
    (m,) = commit.request.messages
    assert (m.role, m.tool_call_id, json.loads(m.text)["status"]) == ("tool", "c1", "OK")
    assert commit.request.step_id == "t1:1:c1:result"
    assert [e.id for e in commit.request.events] == ["t1:1:c1:result:0"]


def test_one_of_two_calls_resolved_keeps_the_turn_paused() -> None:
    commit = resolution(paused_state(waiting("c1"), waiting("c2")), "c2", "error", "boom").start()
    assert isinstance(commit, Commit) and commit.stop_reason == PAUSED
    assert [c.call_id for c in commit.request.turn.pending_calls] == ["c1"]
    assert [e.type for e in commit.request.events] == ["function_return", "turn_paused"]


def test_stale_and_mismatched_resolutions() -> None:
    state = paused_state(waiting("c1"))
    assert resolution(state, "c9", "result").stale        # no such call
    assert resolution(state, "c1", "approve").stale       # it waits for a result, not a decision
    other = paused_state(waiting("c1"))
    other.turn.turn_id = "t2"
    assert resolution(other, "c1", "result").stale        # another turn's


def test_a_timeout_waits_for_its_deadline_then_ends_the_turn_with_every_call_returned() -> None:
    state = paused_state(waiting("c1"), waiting("c2", "approval"))
    early = resolution(state, "c1", "timeout")
    assert 59 <= early.wait <= 60
    late = resolution(state, "c1", "timeout", now=deadline_after(NOW, 61))
    assert late.wait == 0
    commit = late.start()
    assert isinstance(commit, Commit) and commit.stop_reason == "tool_timeout"
    assert [m.tool_call_id for m in commit.request.messages] == ["c1", "c2"]
    assert all("timed out" in json.loads(m.text)["message"] for m in commit.request.messages)
    turn = commit.request.turn
    assert turn.completed and turn.stop_reason == "tool_timeout" and not turn.pending_calls
    assert commit.request.events[-1].turn_completed.stop_reason == "tool_timeout"


def test_approvals() -> None:
    rules = [common_pb2.ToolRule(tool="weather", requires_approval=True, terminal=True)]
    approved = resolution(paused_state(waiting("c1", "approval"), rules=rules), "c1", "approve",
                          now=deadline_after(NOW, 30)).start()
    assert isinstance(approved, Commit) and approved.stop_reason == PAUSED  # a client tool: now its result
    (call,) = approved.request.turn.pending_calls
    assert call.kind == "client" and call.deadline == deadline_after(NOW, 90)
    assert [e.type for e in approved.request.events] == ["tool_call_requested", "turn_paused"]

    denied = resolution(paused_state(waiting("c1", "approval"), rules=rules), "c1", "deny", "not now").start()
    assert isinstance(denied, Commit) and denied.stop_reason is None   # the agent is told, and goes on
    assert "denied this call: not now" in denied.request.messages[0].text

    builtin = waiting("c1", "approval", name="archival_memory_insert")
    run = resolution(paused_state(builtin), "c1", "approve").start()
    assert isinstance(run, RunApproved) and run.call.name == "archival_memory_insert"


def test_a_terminal_tools_result_ends_the_turn() -> None:
    rules = [common_pb2.ToolRule(tool="weather", terminal=True)]
    commit = resolution(paused_state(waiting("c1"), rules=rules), "c1", "result", "ok").start()
    assert isinstance(commit, Commit) and commit.stop_reason == "end_turn" and commit.request.turn.completed
    ended = resolution(paused_state(waiting("c1"), stop_after="max_steps"), "c1", "result", "ok").start()
    assert isinstance(ended, Commit) and ended.stop_reason == "max_steps"


def test_timers_and_deadlines() -> None:
    call = waiting("c1")
    request, msg_id = timer_request(common_pb2.TurnProgress(turn_id="t1"), "ten", "a1", call)
    assert request.resolution.kind == "timeout" and request.resolution.call_id == "c1"
    assert msg_id == f"t1:timeout:c1:{call.deadline}"
    assert seconds_until(deadline_after(NOW, 5), NOW) == 5
    assert seconds_until("garbage", NOW) == 0
