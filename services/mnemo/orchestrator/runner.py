"""The step loop of one turn (docs/architecture.md): the driver of `mnemo.orchestrator.planner`.

Each step is planned by a `StepPlanner` (context → budget → llm.Chat → functions → CommitStep, which
publishes the step's events); the turn goes on while a heartbeat is pending and the limits allow.
A step may pause the turn on calls it must wait for (client-side tools, approvals): then each call's
timer is armed and the turn is done for now; a TurnRequest carrying a `resolution` later commits the
call's return (`mnemo.orchestrator.resolution`) and the turn goes on from its committed step.
This module does the I/O the planners ask for and turns its results back into planner inputs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

from mnemo.common import ids, metrics, telemetry
from mnemo.common.config import Settings
from mnemo.common.errors import Conflict, ContextOverflow, InvalidArgument, MnemoError, NotFound
from mnemo.common.events import EventPublisher
from mnemo.common.ports import LLMPort, MemoryPort
from mnemo.common.telemetry import span
from mnemo.orchestrator import compaction
from mnemo.orchestrator.calls import run_calls, run_resolved
from mnemo.orchestrator.catalog import ModelCatalog, PresetCache
from mnemo.orchestrator.context import ContextAssembler, RenderCache
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import FunctionExecutor, ToolRunner
from mnemo.orchestrator.limits import Limits, resolve_limits
from mnemo.orchestrator.pauses import PAUSED, TurnWaits, timeout_seconds
from mnemo.orchestrator.planner import (
    CallModel,
    Commit,
    Compact,
    Decision,
    RunCalls,
    StepPlanner,
    TurnTotals,
)
from mnemo.orchestrator.resolution import Resolution, RunApproved
from mnemo.orchestrator.steplog import elapsed_ms
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.orchestrator.tools import tool_set
from mnemo.orchestrator.turn_start import start_turn
from mnemo.v1 import common_pb2, llm_pb2

log = logging.getLogger(__name__)

COMMIT_RETRIES = 3  # attempts of a step whose CommitStep lost a compare-and-set race


class CallTimers(Protocol):
    """Arms the timer of each pending call (mnemo.orchestrator.server publishes them to TURNS)."""

    async def arm(self, tenant_id: str, agent_id: str, progress: common_pb2.TurnProgress,
                  trace: Mapping[str, str]) -> None: ...


class TurnRunner:
    """Runs turns; stateless between steps (everything durable goes through CommitStep)."""

    def __init__(self, settings: Settings, memory: MemoryPort, llm: LLMPort, publisher: EventPublisher,
                 counter: TokenCounter | None = None, tools: ToolRunner | None = None,
                 timers: CallTimers | None = None) -> None:
        self.settings = settings
        self.memory = memory
        self.llm = llm
        self.publisher = publisher
        self.tools = tools
        self.timers = timers
        self.pause_seconds = settings.tool_timeout
        self.counter = counter or TokenCounter()
        self.assembler = ContextAssembler(self.counter)
        self.render_cache = RenderCache()
        self.models = ModelCatalog(llm)
        self.presets = PresetCache(memory)

    # ---- the turn ----------------------------------------------------------------------------
    async def prefetch(self, turn: common_pb2.TurnRequest) -> common_pb2.AgentState | MnemoError:
        """The agent's state for `run`, or the error reading it."""
        try:
            return await self.memory.GetContext(
                common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id))
        except MnemoError as err:
            return err

    async def run(self, turn: common_pb2.TurnRequest, seq: int, trace: Mapping[str, str],
                  prefetched: common_pb2.AgentState | MnemoError | None = None,
                  claim: asyncio.Future[Any] | None = None) -> str:
        """Run (or resume) one turn; returns its stop reason ("" when it had already run, PAUSED when it
        waits on calls). TurnWaits: the turn cannot run yet (hand it back).

        `claim`: the consumer's claim of the turn (order check and lease), still on its way. A new
        turn's first step plans and calls the model meanwhile; nothing that changes anything (a
        function, a commit, an event) happens before the claim is awaited, and its exception, if
        any, ends the run."""
        state = prefetched if prefetched is not None else await self.prefetch(turn)
        if claim is not None and not _fresh_turn(turn, state):
            await asyncio.shield(claim)
            claim = None
        if isinstance(state, (NotFound, InvalidArgument)):
            await self.fail(turn, f"agent not available: {state}", state.code, trace)
            return "error"
        if isinstance(state, MnemoError):
            raise state
        if turn.HasField("resolution"):
            return await self._resolve(turn, state, trace)
        if state.turn.pending_calls and not state.turn.completed and state.turn.turn_id != turn.turn_id:
            raise TurnWaits()  # the agent's turn before this one waits on calls: this one waits for it
        start = start_turn(turn, seq, state)
        if start.republish:
            await self.publisher.publish(state.pending_events, trace)
        if start.progress is None:
            return ""
        return await self._go_on(turn, state, start.progress, trace, claim)

    async def _go_on(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                     progress: common_pb2.TurnProgress, trace: Mapping[str, str],
                     claim: asyncio.Future[Any] | None = None) -> str:
        """Run the turn's steps from `progress` until it ends or pauses."""
        if progress.pending_calls:  # paused (a redelivery): its timers may not have been armed
            await self._arm(turn, progress, trace)
            return PAUSED
        ref = common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id)
        limits = resolve_limits(state.config.limits, self.settings, progress.max_steps or turn.max_steps)
        totals = TurnTotals()
        stop: str | None = None
        while stop is None:
            step = progress.steps_done + 1
            started = time.perf_counter()
            with span("orchestrator.step", tracer="mnemo.orchestrator", attributes={
                    "mnemo.agent_id": turn.agent_id, "mnemo.tenant_id": turn.tenant_id,
                    "mnemo.turn_id": turn.turn_id, "mnemo.step": step}):
                for attempt in range(COMMIT_RETRIES):
                    try:
                        stop, next_progress = await self._step(turn, state, progress, limits, totals, step, claim)
                        break
                    except Conflict:
                        if attempt == COMMIT_RETRIES - 1:
                            raise
                        state = await self.memory.GetContext(ref)  # lost a CAS race: redo the step
            metrics.STEP_LATENCY.record(time.perf_counter() - started, {"model": state.config.model})
            progress = next_progress
            if stop is None:
                state = await self.memory.GetContext(ref)
        if stop == PAUSED:
            await self._arm(turn, progress, trace)
        return stop

    async def _arm(self, turn: common_pb2.TurnRequest, progress: common_pb2.TurnProgress,
                   trace: Mapping[str, str]) -> None:
        if self.timers is not None:
            await self.timers.arm(turn.tenant_id, turn.agent_id, progress, trace)

    # ---- a paused turn's calls -----------------------------------------------------------------
    async def _resolve(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                       trace: Mapping[str, str]) -> str:
        """Commit the resolution of a pending call, then go on with the turn (or pause again)."""
        ref = common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id)
        for attempt in range(COMMIT_RETRIES):
            resolution = Resolution(turn=turn, state=state, tools=tool_set(state.config, list(state.turn.turn_tools)),
                                    limits=resolve_limits(state.config.limits, self.settings, state.turn.max_steps),
                                    now=ids.now_iso(), timeout=timeout_seconds(state.config, self.pause_seconds))
            if resolution.stale:
                return await self._after_resolution(turn, state, trace)
            if resolution.wait > 0:
                raise TurnWaits(resolution.wait)  # a timer before its deadline
            with span("orchestrator.resolve", tracer="mnemo.orchestrator", attributes={
                    "mnemo.call_id": turn.resolution.call_id, "mnemo.resolution": turn.resolution.kind}):
                decision = resolution.start()
                if isinstance(decision, RunApproved):
                    executor = FunctionExecutor(self.memory, ref, decision.step_id, decision.memory,
                                                resolution.limits.function_result_max_chars, self.tools)
                    ok, text = await run_resolved(decision.call, resolution.tools, executor, resolution.events)
                    decision = resolution.ran(ok, text)
                try:
                    await self.memory.CommitStep(decision.request, timeout=30)
                    break
                except Conflict:
                    if attempt == COMMIT_RETRIES - 1:
                        raise
                    state = await self.memory.GetContext(ref)
        return await self._after_resolution(turn, await self.memory.GetContext(ref), trace)

    async def _after_resolution(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                                trace: Mapping[str, str]) -> str:
        """Drive the turn from its committed state: done, still paused, or on with its next step (also
        what a resolution delivered again finds, whatever step a crash interrupted)."""
        progress = state.turn
        if progress.turn_id != turn.turn_id:
            return ""
        if progress.completed:
            await self.publisher.publish(state.pending_events, trace)  # deduplicated by id
            return ""
        resumed = common_pb2.TurnRequest(turn_id=turn.turn_id, tenant_id=turn.tenant_id, agent_id=turn.agent_id,
                                         max_steps=progress.max_steps)
        current = common_pb2.TurnProgress()
        current.CopyFrom(progress)
        return await self._go_on(resumed, state, current, trace)

    async def fail(self, turn: common_pb2.TurnRequest, error: str, code: str, trace: Mapping[str, str]) -> None:
        """Report the turn as failed (a turn_failed event) without committing anything."""
        ev = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, 0)
        ev.add("turn_failed", turn_failed=common_pb2.TurnFailed(error=error, code=code))
        await self.publisher.publish(ev.events, trace)

    # ---- one step ----------------------------------------------------------------------------
    async def _step(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                    progress: common_pb2.TurnProgress, limits: Limits, totals: TurnTotals,
                    step: int, claim: asyncio.Future[Any] | None = None) -> tuple[str | None, common_pb2.TurnProgress]:
        """Plan and run one step; returns its stop reason and the turn's progress after it. With a
        `claim` on its way, only the model call runs before it is awaited."""
        config = state.config
        planner = StepPlanner(
            turn=turn, state=state, progress=progress, limits=limits, totals=totals, step=step,
            window=config.context_window or await self.models.context_window(config.model),
            preset=await self.presets.text(turn.tenant_id, config.preset), now=ids.now_iso(),
            session_gap=self.settings.orchestrator_session_gap, assembler=self.assembler,
            render_cache=self.render_cache, tools=tool_set(config, list(progress.turn_tools)),
            pause_seconds=timeout_seconds(config, self.pause_seconds))
        planner.timing.trace_id = telemetry.current_trace_id()
        decision = planner.start()
        if claim is not None:
            if isinstance(decision, CallModel):
                decision = await self._execute(planner, decision)  # while the claim is answered
            await asyncio.shield(claim)
        while not isinstance(decision, Commit):
            decision = await self._execute(planner, decision)
        await self.memory.CommitStep(decision.request, timeout=30)  # memory publishes req.events
        return decision.stop_reason, planner.progress

    async def _execute(self, planner: StepPlanner, decision: Decision) -> Decision:
        """Carry out one decision; returns the planner's next one."""
        if isinstance(decision, Compact):
            started = time.perf_counter()
            window = decision.window or await self.models.context_window(decision.model)
            summary, spent = await compaction.summarize(
                self._chat, self.counter, decision.model, window, decision.summary, decision.evicted,
                decision.summary_max_tokens, planner.meta)
            planner.timing.compaction_ms += elapsed_ms(started)
            metrics.EVICTIONS.add(len(decision.evicted), {"model": planner.model})
            return planner.compacted(summary, spent)
        if isinstance(decision, CallModel):
            metrics.CONTEXT_UTILIZATION.record(decision.prompt_tokens / decision.window, {"model": planner.model})
            started = time.perf_counter()
            try:
                response = await self._chat(decision.request)
            except ContextOverflow:
                return planner.overflowed()
            except MnemoError as err:
                if err.retryable:
                    # Provider down, rate limited, timed out, llm-proxy gone: nothing of the step is
                    # committed, so the consumer hands the turn back and a later delivery redoes the
                    # step (given up after MAX_DELIVERIES failures, reported turn_failed).
                    raise
                return planner.model_failed(str(err), err.code)
            finally:
                planner.timing.model_latency_ms += elapsed_ms(started)
            return planner.replied(response)
        assert isinstance(decision, RunCalls), decision
        ref = common_pb2.AgentRef(tenant_id=planner.turn.tenant_id, agent_id=planner.turn.agent_id)
        executor = FunctionExecutor(self.memory, ref, decision.step_id, decision.memory, decision.result_max_chars,
                                    self.tools)
        return planner.called(await run_calls(decision.assistant, decision.tool_call_error, executor,
                                              decision.events, decision.recent, decision.loop_repeats,
                                              decision.now, tools=decision.tools, called=list(decision.called),
                                              deadline=decision.deadline))

    async def _chat(self, req: llm_pb2.ChatRequest) -> llm_pb2.ChatResponse:
        return await self.llm.Chat(req, timeout=300)


def _fresh_turn(turn: common_pb2.TurnRequest, state: common_pb2.AgentState | MnemoError) -> bool:
    """A new turn of a readable agent whose previous turn waits on nothing: the one kind of turn whose
    first model call may start before its claim is confirmed (everything else waits for the claim)."""
    return (isinstance(state, common_pb2.AgentState) and not turn.HasField("resolution")
            and state.turn.turn_id != turn.turn_id
            and not (state.turn.pending_calls and not state.turn.completed))
