"""Executing the function calls of one model reply: validation, the loop guard, events and the
tool-return messages (every call gets its return, so no call is ever orphaned)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mnemo.common import metrics
from mnemo.orchestrator import packing
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import FunctionExecutor
from mnemo.orchestrator.functions import FunctionError, fingerprint, parse_call
from mnemo.orchestrator.steplog import elapsed_ms
from mnemo.v1 import common_pb2, steps_pb2


@dataclass
class CallsOutcome:
    results: list[common_pb2.Message] = field(default_factory=list)
    heartbeat: bool = False
    loop_detected: bool = False
    recent: list[str] = field(default_factory=list)
    timings: list[steps_pb2.FunctionTiming] = field(default_factory=list)


async def run_calls(assistant: common_pb2.Message, tool_call_error: str, executor: FunctionExecutor,
                    ev: StepEvents, recent: list[str], loop_repeats: int, now: str) -> CallsOutcome:
    """Run `assistant`'s calls in order; `recent` holds this turn's earlier call fingerprints."""
    results: list[common_pb2.Message] = []
    heartbeat = False
    paused = False
    loop_detected = False
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
                call = parse_call(tc.id, tc.name, tc.arguments)
                heartbeat = heartbeat or call.heartbeat
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
                        text = await executor.run(call, i)
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
    if tool_call_error:  # (some of) the model's calls could not be read
        metrics.FUNCTION_ERRORS.add(1, {"function": "?"})
        err = (f"your last reply could not be read as a function call: {tool_call_error}. "
               "Call one of the functions with valid JSON arguments.")
        ev.add("system_alert", system_alert=common_pb2.SystemAlert(text=err))
        results.append(common_pb2.Message(role="system", text=packing.system_alert(err, now),
                                          turn_id=assistant.turn_id, step=assistant.step, created_at=now))
        heartbeat = True
    if paused and all('"status": "OK"' in r.text for r in results if r.role == "tool"):
        heartbeat = False
    return CallsOutcome(results, heartbeat, loop_detected, recent, timings)
