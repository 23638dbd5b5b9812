"""The step that resolves a pending call of a paused turn (docs/tools.md): the tool's result or error,
an approval or a denial, or the timeout. Pure logic, no I/O; the driver is
`mnemo.orchestrator.runner.TurnRunner`.

    Resolution(...).stale                 -> nothing to do (already resolved, or another turn's)
    Resolution(...).wait                  -> seconds before a timeout may be applied
    Resolution(...).start()               -> RunApproved | Commit
    Resolution(...).ran(ok, text)         -> Commit                 (after a RunApproved)

A step that leaves calls pending commits with stop reason PAUSED; one that resolves the last call
lets the turn go on (a heartbeat) or ends it (`stop_after_pending`, a terminal tool, `tool_timeout`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mnemo.orchestrator import packing
from mnemo.orchestrator.calls import request_event
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import StepMemory, truncate
from mnemo.orchestrator.limits import Limits
from mnemo.orchestrator.pauses import PAUSED, RESOLUTIONS, TOOL_TIMEOUT, deadline_after, paused_events, seconds_until
from mnemo.orchestrator.planner import Commit
from mnemo.orchestrator.tools import ToolSet
from mnemo.v1 import common_pb2, memory_pb2


@dataclass(frozen=True, slots=True)
class RunApproved:
    """Run the approved `call` here (a memory function or an MCP tool); answer with `ran`."""

    call: common_pb2.PendingCall
    step_id: str
    memory: StepMemory


class Resolution:
    """The step that resolves one pending call of a paused turn."""

    def __init__(self, *, turn: common_pb2.TurnRequest, state: common_pb2.AgentState, tools: ToolSet,
                 limits: Limits, now: str, timeout: float) -> None:
        self.turn, self.state, self.tools, self.limits, self.now = turn, state, tools, limits, now
        self.timeout = timeout
        self.resolution = turn.resolution
        self.progress = common_pb2.TurnProgress()
        self.progress.CopyFrom(state.turn)
        self.call = next((c for c in state.turn.pending_calls if c.call_id == self.resolution.call_id), None)
        step = self.progress.steps_done
        self.step_id = f"{turn.turn_id}:{step}:{self.resolution.call_id}:{self.resolution.kind}"
        self.events = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, step, key=self.step_id)
        self.memory = StepMemory([_copy(b) for b in state.blocks])

    @property
    def stale(self) -> bool:
        """Nothing to resolve: another turn, or the call is no longer pending (or waits on something else)."""
        if self.state.turn.turn_id != self.turn.turn_id or self.state.turn.completed or self.call is None:
            return True
        return self.resolution.kind not in RESOLUTIONS.get(self.call.kind, ())

    @property
    def wait(self) -> float:
        """Seconds before a timeout may be applied (0: now)."""
        if self.resolution.kind != "timeout" or self.call is None:
            return 0.0
        return max(0.0, seconds_until(self.call.deadline, self.now))

    def start(self) -> RunApproved | Commit:
        call, kind, text = self.call, self.resolution.kind, self.resolution.text
        assert call is not None, "stale resolutions are not started"
        if kind == "timeout":
            return self._time_out()
        if kind == "result":
            return self._resolved([(call, True, self._cut(text))])
        if kind == "error":
            return self._resolved([(call, False, self._cut(text or "the tool failed"))])
        if kind == "deny":
            reason = f": {text}" if text else ""
            return self._resolved([(call, False, f"the user denied this call{reason}")])
        spec = self.tools.custom.get(call.name)   # approve
        if spec is not None and spec.kind != "mcp":  # a client-side tool: now it waits for its result
            waiting = common_pb2.PendingCall()
            waiting.CopyFrom(call)
            waiting.kind = "client"
            waiting.deadline = deadline_after(self.now, self.timeout)
            request_event(self.events, waiting)
            return self._commit([], [waiting if c.call_id == call.call_id else c for c in self.progress.pending_calls])
        return RunApproved(call, self.step_id, self.memory)

    def ran(self, ok: bool, text: str) -> Commit:
        """The approved call ran."""
        assert self.call is not None
        return self._resolved([(self.call, ok, text)])

    # ---- the commit ----
    def _cut(self, text: str) -> str:
        return truncate(text, self.limits.function_result_max_chars, "the tool's output was longer")

    def _time_out(self) -> Commit:
        """Every pending call gets a return saying it timed out; the turn ends."""
        waited = {"client": "no result", "approval": "no decision"}
        returns = [(c, False, f"{waited.get(c.kind, 'no answer')} within {self.timeout:.0f} seconds: "
                              "the call timed out and did not run") for c in self.progress.pending_calls]
        return self._resolved(returns, stop=TOOL_TIMEOUT)

    def _resolved(self, returns: list[tuple[common_pb2.PendingCall, bool, str]], stop: str | None = None) -> Commit:
        done = {c.call_id for c, _, _ in returns}
        remaining = [] if stop else [c for c in self.progress.pending_calls if c.call_id not in done]
        messages = []
        for call, ok, text in returns:
            self.events.add("function_return", function_return=common_pb2.FunctionReturn(
                name=call.name, status="ok" if ok else "error", result=text, call_id=call.call_id))
            messages.append(common_pb2.Message(
                role="tool", text=packing.function_result(ok, text, self.now), tool_call_id=call.call_id,
                name=call.name, turn_id=self.turn.turn_id, step=call.step, created_at=self.now))
            if ok and self.tools.is_terminal(call.name):
                self.progress.stop_after_pending = self.progress.stop_after_pending or "end_turn"
        return self._commit(messages, remaining, stop)

    def _commit(self, messages: list[common_pb2.Message], pending: list[common_pb2.PendingCall],
                stop: str | None = None) -> Commit:
        """Commit the step; `pending`: the calls the turn still waits on (none: it goes on or ends)."""
        p = self.progress
        pending = list(pending)  # (may be views into p.pending_calls)
        del p.pending_calls[:]
        p.pending_calls.extend(pending)
        outcome: str | None = PAUSED
        if pending:
            paused_events(self.events, pending)
        else:
            stop = stop or p.stop_after_pending or None
            p.stop_after_pending = ""
            if stop is None:
                p.heartbeat_pending = True  # the agent takes the next step with the result
            else:
                p.completed, p.stop_reason, p.heartbeat_pending = True, stop, False
                self.events.add("turn_completed", turn_completed=common_pb2.TurnCompleted(
                    stop_reason=stop, steps=p.steps_done, usage=common_pb2.UsageReport(
                        total_tokens=p.tokens_used, model=self.state.config.model, steps=p.steps_done)))
            outcome = stop
        ref = common_pb2.AgentRef(tenant_id=self.turn.tenant_id, agent_id=self.turn.agent_id)
        return Commit(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=self.state.revision, step_id=self.step_id, messages=messages,
            blocks=self.memory.changed_blocks(), turn=p, memory_warning_sent=self.state.memory_warning_sent,
            events=self.events.events, archival_delta=self.memory.archival_inserted), outcome)


def _copy(b: common_pb2.MemoryBlock) -> common_pb2.MemoryBlock:
    out = common_pb2.MemoryBlock()
    out.CopyFrom(b)
    return out
