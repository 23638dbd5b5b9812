"""Executing the function calls of one model reply: validation, the loop guard, tool rules, events and
the tool-return messages. Every call gets its return in the step, except a client-side tool's call or
one that awaits approval: those become pending calls the turn pauses on, and get their return when
resolved (a result, a decision or a timeout), so no call is ever orphaned."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mnemo.common import metrics
from mnemo.orchestrator import packing
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import FunctionExecutor
from mnemo.orchestrator.functions import FunctionError, ParsedCall, fingerprint, parse_call
from mnemo.orchestrator.steplog import elapsed_ms
from mnemo.orchestrator.tools import BUILTIN_ONLY, ToolSet, parse_custom
from mnemo.v1 import common_pb2, steps_pb2


@dataclass
class CallsOutcome:
    results: list[common_pb2.Message] = field(default_factory=list)
    heartbeat: bool = False
    loop_detected: bool = False
    recent: list[str] = field(default_factory=list)
    pending: list[common_pb2.PendingCall] = field(default_factory=list)  # the turn pauses on these
    terminal: bool = False       # a call of a terminal tool ran: the turn ends after this step
    called: list[str] = field(default_factory=list)
    timings: list[steps_pb2.FunctionTiming] = field(default_factory=list)


def pending_call(tc: common_pb2.ToolCall, kind: str, step: int, deadline: str, now: str) -> common_pb2.PendingCall:
    return common_pb2.PendingCall(call_id=tc.id, name=tc.name, arguments=tc.arguments, kind=kind, deadline=deadline,
                                  step=step, requested_at=now)


def request_event(ev: StepEvents, call: common_pb2.PendingCall) -> None:
    """tool_call_requested or approval_requested for a call the turn will wait on."""
    if call.kind == "approval":
        ev.add("approval_requested", approval_requested=common_pb2.ApprovalRequested(
            call_id=call.call_id, name=call.name, arguments=call.arguments, deadline=call.deadline))
    else:
        ev.add("tool_call_requested", tool_call_requested=common_pb2.ToolCallRequested(
            call_id=call.call_id, name=call.name, arguments=call.arguments, deadline=call.deadline))


async def run_call(call: ParsedCall, tools: ToolSet, executor: FunctionExecutor, index: int) -> str:
    """Run a validated call that runs here (a memory function or an MCP tool)."""
    spec = tools.custom.get(call.name)
    if spec is not None:
        return await executor.run_tool(spec, call.args)
    return await executor.run(call, index)


async def run_resolved(call: common_pb2.PendingCall, tools: ToolSet, executor: FunctionExecutor,
                       ev: StepEvents) -> tuple[bool, str]:
    """Run an approved call (its function_call event went out when it was requested): (ok, result text)."""
    spec = tools.custom.get(call.name)
    try:
        parsed = parse_custom(call.call_id, spec, call.arguments) if spec is not None else parse_call(
            call.call_id, call.name, call.arguments)
        if parsed.name == "send_message":
            ev.add("assistant_message", assistant_message=common_pb2.AssistantMessage(text=parsed.args["message"]))
            return True, "message sent"
        if parsed.name == "pause_heartbeats":
            return True, f"heartbeats paused for {parsed.args['minutes']} minutes"
        return True, await run_call(parsed, tools, executor, 0)
    except FunctionError as exc:
        metrics.FUNCTION_ERRORS.add(1, {"function": call.name or "?"})
        return False, str(exc)


async def run_calls(assistant: common_pb2.Message, tool_call_error: str, executor: FunctionExecutor,
                    ev: StepEvents, recent: list[str], loop_repeats: int, now: str, *,
                    tools: ToolSet = BUILTIN_ONLY, called: list[str] | None = None,
                    deadline: str = "") -> CallsOutcome:
    """Run `assistant`'s calls in order; `recent` holds this turn's earlier call fingerprints, `called`
    the names of its earlier calls (tool rules); `deadline` is when a call the turn pauses on times out."""
    results: list[common_pb2.Message] = []
    heartbeat = False
    paused = False
    loop_detected = False
    terminal = False
    called = list(called or [])
    pending: list[common_pb2.PendingCall] = []
    timings: list[steps_pb2.FunctionTiming] = []
    for i, tc in enumerate(assistant.tool_calls):
        started = time.perf_counter()
        fp = fingerprint(tc.name, tc.arguments)
        ok = True
        if recent.count(fp) + 1 >= loop_repeats:
            ok, text, loop_detected = False, (
                f"not executed: {tc.name} was called with the same arguments {loop_repeats} "
                "times in this turn (loop guard); the turn ends here"), True
            ev.add("function_call", function_call=common_pb2.FunctionCall(
                name=tc.name, arguments=tc.arguments, call_id=tc.id))
        else:
            recent.append(fp)
            try:
                violation = tools.rule_violation(tc.name, called)
                if violation is not None:
                    raise FunctionError(violation)
                called.append(tc.name)
                spec = tools.custom.get(tc.name)
                call = parse_custom(tc.id, spec, tc.arguments) if spec is not None else parse_call(
                    tc.id, tc.name, tc.arguments)
                heartbeat = heartbeat or call.heartbeat
                waits = "approval" if tools.needs_approval(tc.name) else (
                    "client" if spec is not None and spec.kind != "mcp" else "")
                if waits:  # no return yet: the turn pauses until the call is resolved
                    ev.add("function_call", function_call=common_pb2.FunctionCall(
                        name=tc.name, arguments=tc.arguments, call_id=tc.id))
                    pending.append(pending_call(tc, waits, assistant.step, deadline, now))
                    request_event(ev, pending[-1])
                    continue
                if call.name == "send_message":
                    ev.add("assistant_message",
                           assistant_message=common_pb2.AssistantMessage(text=call.args["message"]))
                    text = "message sent"
                else:
                    ev.add("function_call", function_call=common_pb2.FunctionCall(
                        name=tc.name, arguments=tc.arguments, call_id=tc.id))
                    if call.name == "pause_heartbeats":
                        paused = True
                        text = f"heartbeats paused for {call.args['minutes']} minutes"
                    else:
                        text = await run_call(call, tools, executor, i)
                terminal = terminal or tools.is_terminal(tc.name)
            except FunctionError as exc:
                ok, text = False, str(exc)
                heartbeat = True  # a failed call always gets another step to fix itself
                metrics.FUNCTION_ERRORS.add(1, {"function": tc.name if tc.name else "?"})
                if not any(e.function_call.call_id == tc.id for e in ev.events if e.type == "function_call"):
                    ev.add("function_call", function_call=common_pb2.FunctionCall(
                        name=tc.name, arguments=tc.arguments, call_id=tc.id))
        timings.append(steps_pb2.FunctionTiming(name=tc.name, call_id=tc.id, status="ok" if ok else "error",
                                                 duration_ms=elapsed_ms(started)))
        if not (ok and tc.name == "send_message"):
            ev.add("function_return", function_return=common_pb2.FunctionReturn(
                name=tc.name, status="ok" if ok else "error", result=text, call_id=tc.id))
        results.append(common_pb2.Message(
            role="tool", text=packing.function_result(ok, text, now), tool_call_id=tc.id,
            name=tc.name, turn_id=assistant.turn_id, step=assistant.step, created_at=now))
    # (Some of) the model's calls could not be read. Not said while calls are pending: a message here
    # would sit between the reply's tool returns.
    if tool_call_error and not pending:
        metrics.FUNCTION_ERRORS.add(1, {"function": "?"})
        err = (f"your last reply could not be read as a function call: {tool_call_error}. "
               "Call one of the functions with valid JSON arguments.")
        ev.add("system_alert", system_alert=common_pb2.SystemAlert(text=err))
        results.append(common_pb2.Message(role="system", text=packing.system_alert(err, now),
                                          turn_id=assistant.turn_id, step=assistant.step, created_at=now))
        heartbeat = True
    if paused and all('"status": "OK"' in r.text for r in results if r.role == "tool"):
        heartbeat = False
    return CallsOutcome(results, heartbeat, loop_detected, recent, pending, terminal, called, timings)
