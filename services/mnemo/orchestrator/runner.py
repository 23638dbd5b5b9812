"""The step loop of one turn (DESIGN.md §3, §4): context → budget → llm.Chat → functions →
CommitStep (which publishes the step's events), repeated while a heartbeat is pending and the limits
allow."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from mnemo.common import ids, metrics
from mnemo.common.config import Settings
from mnemo.common.events import EventPublisher
from mnemo.common.telemetry import span
from mnemo.orchestrator import compaction, packing
from mnemo.orchestrator.calls import run_calls
from mnemo.orchestrator.catalog import ModelCatalog, PresetCache
from mnemo.orchestrator.context import Assembled, ContextAssembler, RenderCache
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.executor import FunctionExecutor, StepMemory
from mnemo.orchestrator.functions import TOOLS
from mnemo.orchestrator.limits import Limits, resolve_limits
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.v1 import common_pb2, llm_pb2, llm_pb2_grpc, memory_pb2, memory_pb2_grpc

log = logging.getLogger(__name__)

COMMIT_RETRIES = 3


class TurnError(Exception):
    """The turn cannot go on (reported as turn_failed)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class TurnTotals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    context_tokens: int = 0
    context_window: int = 0
    model: str = ""


@dataclass
class StepOutcome:
    stop_reason: str | None


def _seconds_since(iso: str) -> float:
    try:
        return (datetime.now(UTC) - ids.parse_time(iso)).total_seconds()
    except ValueError:
        return 0.0


def _valid_time(value: str) -> str:
    try:
        return value if value and ids.parse_time(value) else ""
    except ValueError:
        return ""


def _rpc_code(exc: grpc.aio.AioRpcError) -> str:
    return exc.code().name


class TurnRunner:
    """Runs turns; stateless between steps (everything durable goes through CommitStep)."""

    def __init__(self, settings: Settings, memory: memory_pb2_grpc.MemoryServiceStub,
                 llm: llm_pb2_grpc.LLMServiceStub, publisher: EventPublisher,
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
    async def prefetch(self, turn: common_pb2.TurnRequest) -> common_pb2.AgentState | grpc.aio.AioRpcError:
        """The agent's state for `run`, or the error reading it."""
        try:
            return await self.memory.GetContext(
                common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id))
        except grpc.aio.AioRpcError as exc:
            return exc

    async def run(self, turn: common_pb2.TurnRequest, seq: int, trace: Mapping[str, str],
                  prefetched: common_pb2.AgentState | grpc.aio.AioRpcError | None = None) -> str:
        """Run (or resume) one turn; returns its stop reason ("" when it had already run)."""
        ref = common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id)
        try:
            if prefetched is None:
                prefetched = await self.prefetch(turn)
            if isinstance(prefetched, grpc.aio.AioRpcError):
                raise prefetched
            state = prefetched
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                await self._fail(turn, f"agent not available: {exc.details()}", _rpc_code(exc), trace)
                return "error"
            raise
        if state.turn.turn_id == turn.turn_id:
            # A redelivered turn: its last committed step's events went out with the commit unless
            # memory stopped right after the write; publishing them again is deduplicated by id.
            await self.publisher.publish(state.pending_events, trace)
            if state.turn.completed:
                return ""
            progress = common_pb2.TurnProgress()
            progress.CopyFrom(state.turn)
        elif seq and state.turn.turn_seq > seq:
            return ""  # a later turn of this agent already ran, so this one did too
        else:
            progress = common_pb2.TurnProgress(turn_id=turn.turn_id, turn_seq=seq)
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
                        outcome, state = await self._step(turn, state, progress, limits, totals, step)
                        break
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.ABORTED or attempt == COMMIT_RETRIES - 1:
                            raise
                        state = await self.memory.GetContext(ref)  # lost a CAS race: redo the step
            metrics.STEP_LATENCY.record(time.perf_counter() - started, {"model": state.config.model})
            stop = outcome.stop_reason
            if stop is None:
                state = await self.memory.GetContext(ref)
        return stop

    async def _fail(self, turn: common_pb2.TurnRequest, error: str, code: str, trace: Mapping[str, str]) -> None:
        ev = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, 0)
        ev.add("turn_failed", turn_failed=common_pb2.TurnFailed(error=error, code=code))
        await self.publisher.publish(ev.events, trace)

    # ---- one step ----------------------------------------------------------------------------
    def _inputs(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState, step: int,
                now: str) -> list[common_pb2.Message]:
        """Messages that start this step: the user's message (+ login), or a heartbeat."""
        base = {"turn_id": turn.turn_id, "step": step, "created_at": now}
        if step == 1:
            out = []
            last = state.last_user_message_at
            if last and _seconds_since(last) >= self.settings.orchestrator_session_gap:
                out.append(common_pb2.Message(role="system", text=packing.login(last, now), **base))
            if turn.role == "system":
                out.append(common_pb2.Message(role="system", text=packing.system_alert(turn.message, now), **base))
            else:
                out.append(common_pb2.Message(role="user", text=turn.message, turn_id=turn.turn_id, step=step,
                                              created_at=_valid_time(turn.created_at) or now))
            return out
        last_msg = state.queue[-1] if state.queue else None
        if last_msg is not None and last_msg.role == "system":
            return []  # the previous step ended with a system event: it is the prompt
        failed = last_msg is not None and last_msg.role == "tool" and '"status": "Failed"' in last_msg.text
        reason = packing.HEARTBEAT_AFTER_ERROR if failed else packing.HEARTBEAT_REQUESTED
        return [common_pb2.Message(role="system", text=packing.heartbeat(reason, now), **base)]

    async def _step(self, turn: common_pb2.TurnRequest, state: common_pb2.AgentState,
                    progress_in: common_pb2.TurnProgress, limits: Limits, totals: TurnTotals,
                    step: int) -> tuple[StepOutcome, common_pb2.AgentState]:
        ref = common_pb2.AgentRef(tenant_id=turn.tenant_id, agent_id=turn.agent_id)
        progress = common_pb2.TurnProgress()
        progress.CopyFrom(progress_in)
        config = state.config
        model = config.model
        window = config.context_window or await self.models.context_window(model)
        budget = max(1, window - limits.reserved_completion_tokens)
        preset = await self.presets.text(turn.tenant_id, config.preset)
        now = ids.now_iso()
        ev = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, step)
        meta = {"tenant_id": turn.tenant_id, "agent_id": turn.agent_id, "turn_id": turn.turn_id}

        inputs = self._inputs(turn, state, step, now)
        mem = StepMemory([_copy_block(b) for b in state.blocks])
        summary = state.summary
        queue = list(state.queue)
        evicted_ids: list[str] = []
        warning_sent = state.memory_warning_sent

        def assemble() -> Assembled:
            return self.assembler.assemble(model, preset, state, mem.blocks, summary, queue, inputs, now)

        async def compact(force: bool) -> None:
            nonlocal summary, queue
            asm = assemble()
            target = int(budget * limits.compaction_target_fraction)
            excess = asm.prompt_tokens - target if not force else max(asm.prompt_tokens - target, 1)
            k = compaction.plan_eviction([m.role for m in queue], asm.queue_tokens, excess,
                                         limits.keep_last_messages)
            if k == 0:
                return
            evicted, queue = queue[:k], queue[k:]
            evicted_ids.extend(m.id for m in evicted)
            summarizer = config.summarizer_model or model
            s_window = (window if summarizer == model else await self.models.context_window(summarizer))
            new_summary, spent = await compaction.summarize(
                self._chat, self.counter, summarizer, s_window, summary, evicted,
                max(64, budget // 10), meta)
            summary = new_summary
            progress.tokens_used += spent
            metrics.EVICTIONS.add(k, {"model": model})
            ev.add("system_alert", system_alert=common_pb2.SystemAlert(
                text=f"memory compaction: {k} older messages summarised and removed from view "
                     "(still searchable in recall memory)"))

        asm = assemble()
        used = asm.prompt_tokens / budget
        if used >= limits.compaction_trigger_fraction:
            await compact(force=False)
            asm = assemble()
        if asm.prompt_tokens / budget >= limits.memory_warning_fraction:
            if not warning_sent:
                pct = int(100 * asm.prompt_tokens / budget)
                text = packing.MEMORY_PRESSURE.format(pct=pct)
                inputs.append(common_pb2.Message(role="system", text=packing.system_alert(text, now),
                                                 turn_id=turn.turn_id, step=step, created_at=now))
                ev.add("system_alert", system_alert=common_pb2.SystemAlert(text=text))
                warning_sent = True
                asm = assemble()
        else:
            warning_sent = False

        def finish(stop: str, messages: list[common_pb2.Message]) -> memory_pb2.CommitStepRequest:
            progress.steps_done = step
            progress.completed = True
            progress.stop_reason = stop
            progress.heartbeat_pending = False
            return self._commit_request(ref, state, turn, step, messages, mem, summary,
                                        summary != state.summary, evicted_ids, progress, warning_sent, ev)

        if asm.prompt_tokens > budget:
            await compact(force=True)
            asm = assemble()
        if asm.prompt_tokens > budget:
            self._completed_event(ev, "context_overflow", progress, totals, step)
            req = finish("context_overflow", inputs)
            return await self._commit(req, "context_overflow"), state

        # ---- the model call (one compaction + retry on a provider overflow) ----
        response: llm_pb2.ChatResponse | None = None
        for attempt in range(2):
            metrics.CONTEXT_UTILIZATION.record(asm.prompt_tokens / window, {"model": model})
            totals.context_tokens, totals.context_window, totals.model = asm.prompt_tokens, window, model
            try:
                response = await self._chat(asm.chat_request(
                    self.render_cache, model=model, tools=TOOLS, tool_choice="auto",
                    max_tokens=limits.reserved_completion_tokens, purpose="agent",
                    prompt_tokens=asm.prompt_tokens if self.counter.same_as_proxy else 0, **meta))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE and attempt == 0:
                    await compact(force=True)
                    asm = assemble()
                    continue
                stop = "context_overflow" if exc.code() == grpc.StatusCode.OUT_OF_RANGE else "error"
                if stop == "error":
                    ev.add("turn_failed", turn_failed=common_pb2.TurnFailed(
                        error=f"model call failed: {exc.details()}", code=_rpc_code(exc)))
                    req = finish(stop, inputs)
                    return await self._commit(req, stop), state
                self._completed_event(ev, stop, progress, totals, step)
                return await self._commit(finish(stop, inputs), stop), state
        assert response is not None
        usage = response.usage
        totals.prompt_tokens += usage.prompt_tokens
        totals.completion_tokens += usage.completion_tokens
        progress.tokens_used += usage.total_tokens or (usage.prompt_tokens + usage.completion_tokens)

        # ---- parse and execute ----
        reply = response.message
        assistant = common_pb2.Message(role="assistant", text=reply.content, turn_id=turn.turn_id,
                                       step=step, created_at=now)
        for i, tc in enumerate(reply.tool_calls):
            assistant.tool_calls.add(id=tc.id or f"call-{turn.turn_id}-{step}-{i}", name=tc.name,
                                     arguments=tc.arguments)
        if reply.content.strip():
            ev.add("inner_thought", inner_thought=common_pb2.InnerThought(text=reply.content))
        executor = FunctionExecutor(self.memory, ref, f"{turn.turn_id}:{step}", mem,
                                    limits.function_result_max_chars)
        outcome_calls = await run_calls(assistant, response.tool_call_error, executor, ev,
                                        list(progress.recent_calls), limits.loop_repeats, now)
        results = outcome_calls.results
        heartbeat, loop_detected = outcome_calls.heartbeat, outcome_calls.loop_detected
        del progress.recent_calls[:]
        progress.recent_calls.extend(outcome_calls.recent)

        stop: str | None = None
        if loop_detected:
            stop = "loop_detected"
        elif not heartbeat:
            stop = "end_turn"
        elif step >= limits.max_steps:
            stop = "max_steps"
        elif progress.tokens_used >= limits.max_tokens_per_turn:
            stop = "token_budget"

        for m in [*inputs, assistant, *results]:
            self.assembler.message_tokens(model, m)  # cache the count in the committed message
        ev.add("usage", usage=common_pb2.UsageReport(
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens, model=response.model or model,
            context_tokens=asm.prompt_tokens, context_window=window, steps=step))
        messages = [*inputs, assistant, *results]
        if stop is not None:
            self._completed_event(ev, stop, progress, totals, step)
            req = finish(stop, messages)
        else:
            progress.steps_done = step
            progress.heartbeat_pending = True
            req = self._commit_request(ref, state, turn, step, messages, mem, summary,
                                       summary != state.summary, evicted_ids, progress, warning_sent, ev)
        outcome = await self._commit(req, stop)
        progress_in.CopyFrom(progress)
        return outcome, state

    # ---- helpers -----------------------------------------------------------------------------
    async def _chat(self, req: llm_pb2.ChatRequest) -> llm_pb2.ChatResponse:
        return await self.llm.Chat(req, timeout=300)

    def _completed_event(self, ev: StepEvents, stop: str, progress: common_pb2.TurnProgress,
                         totals: TurnTotals, step: int) -> None:
        ev.add("turn_completed", turn_completed=common_pb2.TurnCompleted(
            stop_reason=stop, steps=step, usage=common_pb2.UsageReport(
                prompt_tokens=totals.prompt_tokens, completion_tokens=totals.completion_tokens,
                total_tokens=max(progress.tokens_used, totals.prompt_tokens + totals.completion_tokens),
                model=totals.model, context_tokens=totals.context_tokens,
                context_window=totals.context_window, steps=step)))

    def _commit_request(self, ref: common_pb2.AgentRef, state: common_pb2.AgentState,
                        turn: common_pb2.TurnRequest, step: int, messages: list[common_pb2.Message],
                        mem: StepMemory, summary: str, summary_changed: bool, evicted: list[str],
                        progress: common_pb2.TurnProgress, warning_sent: bool,
                        ev: StepEvents) -> memory_pb2.CommitStepRequest:
        return memory_pb2.CommitStepRequest(
            ref=ref, expected_revision=state.revision, step_id=f"{turn.turn_id}:{step}",
            messages=messages, blocks=mem.changed_blocks(), summary_changed=summary_changed,
            summary=summary, evict_message_ids=evicted, turn=progress,
            memory_warning_sent=warning_sent, events=ev.events, archival_delta=mem.archival_inserted)

    async def _commit(self, req: memory_pb2.CommitStepRequest, stop: str | None) -> StepOutcome:
        """Commit the step; memory publishes the step's events (req.events) once it is durable."""
        await self.memory.CommitStep(req, timeout=30)
        return StepOutcome(stop)


def _copy_block(b: common_pb2.MemoryBlock) -> common_pb2.MemoryBlock:
    out = common_pb2.MemoryBlock()
    out.CopyFrom(b)
    return out
