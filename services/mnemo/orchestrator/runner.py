"""The step loop of one turn (docs/architecture.md): the driver of `mnemo.orchestrator.planner`.

Each step is planned by a `StepPlanner` (context → budget → llm.Chat → functions → CommitStep, which
publishes the step's events); the turn goes on while a heartbeat is pending and the limits allow.
This module does the I/O the planner asks for and turns its results back into planner inputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from mnemo.common import ids, metrics, telemetry
from mnemo.common.config import Settings
from mnemo.common.errors import Conflict, ContextOverflow, InvalidArgument, MnemoError, NotFound
from mnemo.common.events import EventPublisher
from mnemo.common.ports import LLMPort, MemoryPort
from mnemo.common.telemetry import span
from mnemo.orchestrator import compaction
from mnemo.orchestrator.calls import run_calls
from mnemo.orchestrator.catalog import ModelCatalog, PresetCache
from mnemo.orchestrator.context import ContextAssembler, RenderCache
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import FunctionExecutor
from mnemo.orchestrator.limits import Limits, resolve_limits
from mnemo.orchestrator.planner import (
    CallModel,
    Commit,
    Compact,
    Decision,
    RunCalls,
    StepPlanner,
    TurnTotals,
    start_turn,
)
from mnemo.orchestrator.steplog import elapsed_ms
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.v1 import common_pb2, llm_pb2

log = logging.getLogger(__name__)

COMMIT_RETRIES = 3  # attempts of a step whose CommitStep lost a compare-and-set race


class TurnRunner:
    """Runs turns; stateless between steps (everything durable goes through CommitStep)."""

    def __init__(self, settings: Settings, memory: MemoryPort, llm: LLMPort, publisher: EventPublisher,
                 counter: TokenCounter | None = None) -> None:
        self.settings = settings
        self.memory = memory
        self.llm = llm
        self.publisher = publisher
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
                  prefetched: common_pb2.AgentState | MnemoError | None = None) -> str:
        """Run (or resume) one turn; returns its stop reason ("" when it had already run)."""
        ref = common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id)
        state = prefetched if prefetched is not None else await self.prefetch(turn)
        if isinstance(state, (NotFound, InvalidArgument)):
            await self.fail(turn, f"agent not available: {state}", state.code, trace)
            return "error"
        if isinstance(state, MnemoError):
            raise state
        start = start_turn(turn, seq, state)
        if start.republish:
            await self.publisher.publish(state.pending_events, trace)
        progress = start.progress
        if progress is None:
            return ""
        limits = resolve_limits(state.config.limits, self.settings, turn.max_steps)
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
                        stop, next_progress = await self._step(turn, state, progress, limits, totals, step)
                        break
                    except Conflict:
                        if attempt == COMMIT_RETRIES - 1:
                            raise
                        state = await self.memory.GetContext(ref)  # lost a CAS race: redo the step
            metrics.STEP_LATENCY.record(time.perf_counter() - started, {"model": state.config.model})
            progress = next_progress
            if stop is None:
                state = await self.memory.GetContext(ref)
        return stop

    async def fail(self, turn: common_pb2.TurnRequest, error: str, code: str, trace: Mapping[str, str]) -> None:
        """Report the turn as failed (a turn_failed event) without committing anything."""
        ev = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, 0)
        ev.add("turn_failed", turn_failed=common_pb2.TurnFailed(error=error, code=code))
        await self.publisher.publish(ev.events, trace)

    # ---- one step ----------------------------------------------------------------------------
    async def _step(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                    progress: common_pb2.TurnProgress, limits: Limits, totals: TurnTotals,
                    step: int) -> tuple[str | None, common_pb2.TurnProgress]:
        """Plan and run one step; returns its stop reason and the turn's progress after it."""
        config = state.config
        planner = StepPlanner(
            turn=turn, state=state, progress=progress, limits=limits, totals=totals, step=step,
            window=config.context_window or await self.models.context_window(config.model),
            preset=await self.presets.text(turn.tenant_id, config.preset), now=ids.now_iso(),
            session_gap=self.settings.orchestrator_session_gap, assembler=self.assembler,
            render_cache=self.render_cache)
        planner.timing.trace_id = telemetry.current_trace_id()
        decision = planner.start()
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
                return planner.model_failed(str(err), err.code)
            finally:
                planner.timing.model_latency_ms += elapsed_ms(started)
            return planner.replied(response)
        assert isinstance(decision, RunCalls), decision
        ref = common_pb2.AgentRef(tenant_id=planner.turn.tenant_id, agent_id=planner.turn.agent_id)
        executor = FunctionExecutor(self.memory, ref, decision.step_id, decision.memory, decision.result_max_chars)
        return planner.called(await run_calls(decision.assistant, decision.tool_call_error, executor,
                                              decision.events, decision.recent, decision.loop_repeats,
                                              decision.now))

    async def _chat(self, req: llm_pb2.ChatRequest) -> llm_pb2.ChatResponse:
        return await self.llm.Chat(req, timeout=300)
