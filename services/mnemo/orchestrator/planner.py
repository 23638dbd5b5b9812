"""The step planner (docs/architecture.md): every decision of one agent step, as plain data, without I/O.

A `StepPlanner` is built from the agent's state, the turn's limits and what the driver looked up
(context window, preset text). It answers each result the driver hands it with the next decision:

    start()                       -> Compact | CallModel | Commit
    compacted(summary, spent)     -> Compact | CallModel | Commit   (after a Compact)
    replied(response)             -> RunCalls                       (after a CallModel)
    overflowed()                  -> Compact | CallModel | Commit   (the provider said ContextOverflow)
    model_failed(message, code)   -> Commit                         (any other model-call failure)
    called(outcome)               -> Commit                         (after a RunCalls)

A step whose reply holds calls the turn must wait on (a client-side tool, a call that needs approval)
commits them as pending calls with stop reason PAUSED (mnemo.orchestrator.pauses); the step that
resolves them is planned by mnemo.orchestrator.resolution.

The driver (`mnemo.orchestrator.runner.TurnRunner`) does the I/O: memory, llm-proxy, the summarizer
and the agent's functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mnemo.orchestrator import compaction, packing
from mnemo.orchestrator.calls import CallsOutcome
from mnemo.orchestrator.context import Assembled, ContextAssembler, RenderCache
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import StepMemory
from mnemo.orchestrator.limits import Limits
from mnemo.orchestrator.pauses import PAUSED, deadline_after, paused_events
from mnemo.orchestrator.steplog import HEARTBEAT, context_breakdown, elapsed_ms
from mnemo.orchestrator.tools import BUILTIN_ONLY, ToolSet
from mnemo.orchestrator.turn_start import step_inputs
from mnemo.v1 import common_pb2, llm_pb2, memory_pb2, steps_pb2

COMPACTION_ALERT = ("memory compaction: {k} older messages summarised and removed from view "
                    "(still searchable in recall memory)")


# ---- decisions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Compact:
    """Fold `evicted` (the oldest queue messages, already out of the context) into `summary` with
    the summarizer `model`; answer with `compacted`."""

    evicted: list[common_pb2.Message]
    summary: str
    model: str
    window: int              # the summarizer's context window; 0: look it up
    summary_max_tokens: int


@dataclass(frozen=True, slots=True)
class CallModel:
    """Send `request` to the llm-proxy; answer with `replied`, `overflowed` or `model_failed`."""

    request: llm_pb2.ChatRequest
    prompt_tokens: int
    window: int


@dataclass(frozen=True, slots=True)
class RunCalls:
    """Run the function calls of `assistant` (`mnemo.orchestrator.calls.run_calls`) against
    `memory`, adding their events to `events`; answer with `called`."""

    assistant: common_pb2.Message
    tool_call_error: str
    step_id: str
    memory: StepMemory
    events: StepEvents
    recent: list[str]
    loop_repeats: int
    result_max_chars: int
    now: str
    tools: ToolSet = BUILTIN_ONLY
    called: tuple[str, ...] = ()
    deadline: str = ""   # when a call the turn pauses on times out


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit the step (CommitStep, which publishes its events); `stop_reason` None: heartbeat;
    PAUSED: the turn waits on pending calls."""

    request: memory_pb2.CommitStepRequest
    stop_reason: str | None


Decision = Compact | CallModel | RunCalls | Commit


@dataclass
class TurnTotals:
    """What a turn's steps used so far (reported in turn_completed)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    context_tokens: int = 0
    context_window: int = 0
    model: str = ""


def stop_reason(outcome: CallsOutcome, step: int, tokens_used: int, limits: Limits) -> str | None:
    """Why the turn ends after a step's calls ran, or None when it takes another step."""
    if outcome.loop_detected:
        return "loop_detected"
    if outcome.terminal or not outcome.heartbeat:
        return "end_turn"
    if step >= limits.max_steps:
        return "max_steps"
    if tokens_used >= limits.max_tokens_per_turn:
        return "token_budget"
    return None


# ---- the planner -------------------------------------------------------------------------------
class StepPlanner:
    """The decisions of one step (see the module docstring for the protocol)."""

    def __init__(self, *, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                 progress: common_pb2.TurnProgress, limits: Limits, totals: TurnTotals, step: int,
                 window: int, preset: str, now: str, session_gap: float, assembler: ContextAssembler,
                 render_cache: RenderCache, tools: ToolSet = BUILTIN_ONLY, pause_seconds: float = 600.0) -> None:
        self.turn, self.state, self.limits, self.totals, self.step = turn, state, limits, totals, step
        self.progress = common_pb2.TurnProgress()
        self.progress.CopyFrom(progress)
        self.model = state.config.model
        self.window = window
        self.budget = max(1, window - limits.reserved_completion_tokens)
        self.preset, self.now = preset, now
        self.assembler, self.render_cache = assembler, render_cache
        self.tools, self.pause_seconds = tools, pause_seconds
        self.meta = {"tenant_id": turn.tenant_id, "agent_id": turn.agent_id, "turn_id": turn.turn_id}
        self.events = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, step)
        self.inputs = step_inputs(turn, state, step, now, session_gap)
        self.memory = StepMemory([_copy_block(b) for b in state.blocks])
        self.summary = state.summary
        # The state's queue itself, not a list of it: a list holds an object per message, made anew
        # at every step (a millisecond at 3,000 messages). Evictions make it a list of the rest.
        self.queue: Sequence[common_pb2.Message] = state.queue
        self._state_bytes: bytes | None = None
        self.evicted_ids: list[str] = []
        self.warning_sent = state.memory_warning_sent
        self._asm: Assembled | None = None
        self._after_compaction: Callable[[], Decision] | None = None
        self._evicting = 0
        self._overflow_retried = False
        self._response: llm_pb2.ChatResponse | None = None
        self._assistant: common_pb2.Message | None = None
        # Filled by the driver as it waits (model latency, compaction, trace id); reported in the
        # step's usage event with the function durations and the stop reason.
        self.timing = steps_pb2.StepTiming()
        self._started = time.perf_counter()

    @property
    def assembled(self) -> Assembled:
        """The context as last assembled."""
        assert self._asm is not None, "start() first"
        return self._asm

    # ---- context within budget ----
    def start(self) -> Decision:
        self._assemble()
        if self.assembled.prompt_tokens / self.budget >= self.limits.compaction_trigger_fraction:
            return self._compact(force=False, then=self._warn)
        return self._warn()

    def _warn(self) -> Decision:
        """The memory-pressure alert: once when the context crosses the warning fraction (again
        after it fell below)."""
        tokens = self.assembled.prompt_tokens
        if tokens / self.budget >= self.limits.memory_warning_fraction:
            if not self.warning_sent:
                text = packing.MEMORY_PRESSURE.format(pct=int(100 * tokens / self.budget))
                self.inputs.append(common_pb2.Message(
                    role="system", text=packing.system_alert(text, self.now), turn_id=self.turn.turn_id,
                    step=self.step, created_at=self.now))
                self.events.add("system_alert", system_alert=common_pb2.SystemAlert(text=text))
                self.warning_sent = True
                self._assemble()
        else:
            self.warning_sent = False
        if self.assembled.prompt_tokens > self.budget:
            return self._compact(force=True, then=self._fit)
        return self._fit()

    def _fit(self) -> Decision:
        if self.assembled.prompt_tokens > self.budget:
            return self._end("context_overflow", self.inputs)
        return self._call_model()

    def _compact(self, force: bool, then: Callable[[], Decision]) -> Decision:
        """Evict the oldest messages for a summary, then go on with `then` (right away when nothing
        can be evicted)."""
        asm = self.assembled
        k = compaction.eviction_count([m.role for m in self.queue], asm.queue_tokens, asm.prompt_tokens,
                                      int(self.budget * self.limits.compaction_target_fraction),
                                      self.limits.keep_last_messages, force)
        if k == 0:
            return then()
        evicted, self.queue = list(self.queue[:k]), list(self.queue[k:])
        self.evicted_ids.extend(m.id for m in evicted)
        self._after_compaction, self._evicting = then, k
        summarizer = self.state.config.summarizer_model or self.model
        return Compact(evicted, self.summary, summarizer, self.window if summarizer == self.model else 0,
                       max(64, self.budget // 10))

    def compacted(self, summary: str, spent: int) -> Decision:
        """The summarizer folded the evicted messages into `summary`, spending `spent` tokens."""
        then, self._after_compaction = self._after_compaction, None
        assert then is not None, "no compaction pending"
        self.summary = summary
        self.progress.tokens_used += spent
        alert = COMPACTION_ALERT.format(k=self._evicting)
        self.events.add("system_alert", system_alert=common_pb2.SystemAlert(text=alert))
        self._assemble()
        return then()

    # ---- the model call ----
    def _call_model(self) -> CallModel:
        asm = self.assembled
        t = self.totals
        t.context_tokens, t.context_window, t.model = asm.prompt_tokens, self.window, self.model
        # self.queue is the state's queue less the messages evicted from its front during this step.
        entries = self.render_cache.queue_entries(self.state, self.state_bytes)[len(self.evicted_ids):]
        request = asm.chat_request(
            self.render_cache, entries, model=self.model, tools=self.tools.llm_tools,
            tool_choice=self.tools.tool_choice(first_call=not self.progress.called_tools),
            max_tokens=self.limits.reserved_completion_tokens, purpose="agent",
            prompt_tokens=asm.prompt_tokens if self.assembler.counter.same_as_proxy else 0, **self.meta)
        return CallModel(request, asm.prompt_tokens, self.window)

    def overflowed(self) -> Decision:
        """The provider found the request too long: one forced compaction and one retry, then stop."""
        if self._overflow_retried:
            return self._end("context_overflow", self.inputs)
        self._overflow_retried = True
        return self._compact(force=True, then=self._call_model)

    def model_failed(self, message: str, code: str) -> Commit:
        """The model call failed for good (`code`: the status name; a transient failure is not
        planned: the turn is handed back and redone): the turn fails."""
        self.events.add("turn_failed", turn_failed=common_pb2.TurnFailed(
            error=f"model call failed: {message}", code=code))
        return self._commit(self.inputs, "error")

    def replied(self, response: llm_pb2.ChatResponse) -> RunCalls:
        """The model's reply: its usage is counted and its calls are to run."""
        self._response = response
        self.timing.finish_reason = response.finish_reason
        usage = response.usage
        self.totals.prompt_tokens += usage.prompt_tokens
        self.totals.completion_tokens += usage.completion_tokens
        self.progress.tokens_used += usage.total_tokens or (usage.prompt_tokens + usage.completion_tokens)
        reply = response.message
        turn_id, step = self.turn.turn_id, self.step
        assistant = common_pb2.Message(role="assistant", text=reply.content, turn_id=turn_id, step=step,
                                       created_at=self.now)
        for i, tc in enumerate(reply.tool_calls):
            assistant.tool_calls.add(id=tc.id or f"call-{turn_id}-{step}-{i}", name=tc.name,
                                     arguments=tc.arguments)
        if reply.content.strip():
            self.events.add("inner_thought", inner_thought=common_pb2.InnerThought(text=reply.content))
        self._assistant = assistant
        return RunCalls(assistant, response.tool_call_error, f"{turn_id}:{step}", self.memory, self.events,
                        list(self.progress.recent_calls), self.limits.loop_repeats,
                        self.limits.function_result_max_chars, self.now, self.tools,
                        tuple(self.progress.called_tools), deadline_after(self.now, self.pause_seconds))

    # ---- the commit ----
    def called(self, outcome: CallsOutcome) -> Commit:
        """The calls ran: commit the step, with its stop reason (None: a heartbeat is pending)."""
        response, assistant = self._response, self._assistant
        assert response is not None and assistant is not None, "replied() first"
        del self.progress.recent_calls[:]
        self.progress.recent_calls.extend(outcome.recent)
        del self.progress.called_tools[:]
        self.progress.called_tools.extend(outcome.called)
        stop = stop_reason(outcome, self.step, self.progress.tokens_used, self.limits)
        messages = [*self.inputs, assistant, *outcome.results]
        for m in messages:
            self.assembler.message_tokens(self.model, m)  # cache the count in the committed message
        usage = response.usage
        timing = self.timing
        timing.functions.extend(outcome.timings)
        timing.stop_reason = PAUSED if outcome.pending else (stop or HEARTBEAT)
        timing.step_ms = elapsed_ms(self._started)
        self.events.add("usage", usage=common_pb2.UsageReport(
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens, model=response.model or self.model,
            context_tokens=self.assembled.prompt_tokens, context_window=self.window, steps=self.step,
            context=context_breakdown(self.assembled, self.limits), timing=timing))
        if outcome.pending:  # the turn waits on these calls; `stop` applies once they are resolved
            self.progress.pending_calls.extend(outcome.pending)
            # (the agent sees the results in a next step, unless a rule or a limit ends the turn)
            ending = stop is not None and (stop != "end_turn" or outcome.terminal)
            self.progress.stop_after_pending = stop if ending and stop else ""
            paused_events(self.events, outcome.pending)
            return self._commit(messages, PAUSED)
        return self._commit(messages, None) if stop is None else self._end(stop, messages)

    def _end(self, stop: str, messages: list[common_pb2.Message]) -> Commit:
        t, p, step = self.totals, self.progress, self.step
        self.events.add("turn_completed", turn_completed=common_pb2.TurnCompleted(
            stop_reason=stop, steps=step, usage=common_pb2.UsageReport(
                prompt_tokens=t.prompt_tokens, completion_tokens=t.completion_tokens,
                total_tokens=max(p.tokens_used, t.prompt_tokens + t.completion_tokens), model=t.model,
                context_tokens=t.context_tokens, context_window=t.context_window, steps=step)))
        return self._commit(messages, stop)

    def _commit(self, messages: list[common_pb2.Message], stop: str | None) -> Commit:
        p = self.progress
        p.steps_done = self.step
        if stop is None:
            p.heartbeat_pending = True
        elif stop == PAUSED:
            p.heartbeat_pending = False
        else:
            p.completed, p.stop_reason, p.heartbeat_pending = True, stop, False
        ref = common_pb2.AgentRef(tenant_id=self.turn.tenant_id, agent_id=self.turn.agent_id)
        return Commit(memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=self.state.revision, step_id=f"{self.turn.turn_id}:{self.step}",
            messages=messages, blocks=self.memory.changed_blocks(),
            summary_changed=self.summary != self.state.summary, summary=self.summary,
            evict_message_ids=self.evicted_ids, turn=p, memory_warning_sent=self.warning_sent,
            events=self.events.events, archival_delta=self.memory.archival_inserted), stop)

    @property
    def state_bytes(self) -> bytes:
        """The step's state serialized (once): what the render cache compares with an agent's last step."""
        if self._state_bytes is None:
            self._state_bytes = self.state.SerializeToString()
        return self._state_bytes

    def _assemble(self) -> None:
        # self.queue is the state's queue less the messages evicted from its front during this step.
        tokens = self.render_cache.queue_tokens(self.state, self.state_bytes, self.model,
                                                self.assembler.message_tokens)[len(self.evicted_ids):]
        self._asm = self.assembler.assemble(self.model, self.preset, self.state, self.memory.blocks,
                                            self.summary, self.queue, self.inputs, self.now, self.tools,
                                            queue_tokens=tokens)


def _copy_block(b: common_pb2.MemoryBlock) -> common_pb2.MemoryBlock:
    out = common_pb2.MemoryBlock()
    out.CopyFrom(b)
    return out
