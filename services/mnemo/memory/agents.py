"""Agents: create, read, update, list, delete; the step loop's GetContext / CommitStep (user edits: edits.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mnemo.common import ids, subjects, telemetry
from mnemo.common.agent_fields import CONSOLIDATION_AFTER_TURNS, UPDATABLE
from mnemo.common.config import Settings
from mnemo.common.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from mnemo.common.events import EventPublisher
from mnemo.common.tool_specs import check_rules, check_tools
from mnemo.memory import blocks as core
from mnemo.memory.commitlog import CommitLog
from mnemo.memory.llm_client import LLMClient
from mnemo.memory.search.base import SearchBackend
from mnemo.memory.steps import apply_step
from mnemo.memory.store import AgentStore, check_ref
from mnemo.memory.templates import DEFAULT_HUMAN, DEFAULT_PERSONA, DEFAULT_PRESET, TemplateStore
from mnemo.v1 import common_pb2, memory_pb2

if TYPE_CHECKING:
    from mnemo.memory.shared_blocks import SharedBlocks

log = logging.getLogger(__name__)

CAS_RETRIES = 8
MAX_PAGE_SIZE = 100
FIXED = {"id", "tenant_id", "created_at", "embedding_model", "embedding_dim"}


def public(state: common_pb2.AgentState) -> common_pb2.AgentState:
    """The state as callers see it (without the commit-log outbox)."""
    out = common_pb2.AgentState()
    out.CopyFrom(state)
    del out.commit_outbox[:]
    return out


def check_config(config: common_pb2.AgentConfig) -> None:
    """Reject negative sizes and fractions outside (0, 1]."""
    if config.context_window < 0:
        raise InvalidArgument("context_window must be >= 0")
    lim = config.limits
    for name in ("max_steps", "max_tokens_per_turn", "function_result_max_chars", "keep_last_messages",
                 "reserved_completion_tokens"):
        if getattr(lim, name) < 0:
            raise InvalidArgument(f"limits.{name} must be >= 0")
    for name in ("memory_warning_fraction", "compaction_trigger_fraction", "compaction_target_fraction"):
        value = getattr(lim, name)
        if value < 0 or value > 1:
            raise InvalidArgument(f"limits.{name} must be between 0 and 1, got {value}")
    if (lim.compaction_target_fraction and lim.compaction_trigger_fraction
            and lim.compaction_target_fraction >= lim.compaction_trigger_fraction):
        raise InvalidArgument("limits.compaction_target_fraction must be below compaction_trigger_fraction")
    check_tools(config.tools)
    check_rules(config.tool_rules)
    if config.tool_timeout_seconds < 0:
        raise InvalidArgument("tool_timeout_seconds must be >= 0")
    cons = config.consolidation
    if cons.idle_minutes < 0 or cons.idle_minutes != cons.idle_minutes or cons.idle_minutes > 525_600:
        raise InvalidArgument("consolidation.idle_minutes must be between 0 and 525600 (a year)")
    if not 0 <= cons.near_limit_fraction <= 1:
        raise InvalidArgument("consolidation.near_limit_fraction must be between 0 and 1")
    if len(cons.model) > 200:
        raise InvalidArgument("consolidation.model longer than 200 characters")


def paginate(page: int, page_size: int, default_size: int = 10) -> tuple[int, int]:
    """Validated (page, page_size): 1-based page, size 1..100."""
    page = page or 1
    page_size = page_size or default_size
    if page < 1:
        raise InvalidArgument(f"page must be >= 1, got {page}")
    if page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page, page_size


class Agents:
    """Agent records and their state, over the KV store, with the commit log."""

    def __init__(self, settings: Settings, store: AgentStore, templates: TemplateStore, llm: LLMClient,
                 commitlog: CommitLog, events: EventPublisher) -> None:
        self.settings = settings
        self.store = store
        self.templates = templates
        self.llm = llm
        self.commitlog = commitlog
        self.events = events
        self.backend: SearchBackend | None = None  # set by the service once the backend is up
        self.shared: SharedBlocks | None = None    # set by the service (shared_blocks.py)

    # ---- records ---------------------------------------------------------------------------

    async def _block_text(self, tenant_id: str, kind: str, text: str, name: str, default: str) -> str:
        if text:
            return text
        return (await self.templates.get(tenant_id, kind, name or default)).text

    async def create(self, req: memory_pb2.CreateAgentRequest) -> common_pb2.AgentState:
        check_ref(req.tenant_id)
        config = common_pb2.AgentConfig()
        config.CopyFrom(req.config)
        if config.id:
            check_ref(req.tenant_id, config.id)
        else:
            config.id = ids.new_id("agent")
        config.tenant_id = req.tenant_id
        config.created_at = ids.now_iso()
        check_config(config)
        await self._fill_models(config)
        config.preset = config.preset or DEFAULT_PRESET
        if not config.name:
            config.name = config.id

        state = common_pb2.AgentState(config=config)
        persona = await self._block_text(req.tenant_id, "persona", req.persona, req.persona_name, DEFAULT_PERSONA)
        human = await self._block_text(req.tenant_id, "human", req.human, req.human_name, DEFAULT_HUMAN)
        state.blocks.append(core.make_block("persona", persona))
        state.blocks.append(core.make_block("human", human))
        for b in req.blocks:
            if core.find_block(state, b.label) is not None and b.label in ("persona", "human"):
                core.set_block(state, b)
            elif core.find_block(state, b.label) is not None:
                raise InvalidArgument(f"duplicate block label {b.label!r}")
            else:
                state.blocks.append(core.make_block(b.label, b.value, b.limit))
        try:
            return public(await self.store.create(state))
        except Conflict:
            raise AlreadyExists(f"agent {config.id} already exists") from None

    async def _fill_models(self, config: common_pb2.AgentConfig) -> None:
        """Chat and embedding model defaults from the llm-proxy (UNAVAILABLE when it is unreachable)."""
        try:
            defaults = await self.llm.defaults()
        except Unavailable as exc:
            if config.model and config.embedding_model and config.embedding_dim:
                return  # nothing to ask
            # An agent must record its embedding model and dimension: refuse rather than guess.
            raise Unavailable(f"cannot resolve the agent's default models: {exc}") from None
        config.model = config.model or defaults.chat_model
        if not config.embedding_model:
            config.embedding_model = defaults.embedding_model
            config.embedding_dim = config.embedding_dim or defaults.embedding_dim
        elif not config.embedding_dim:
            config.embedding_dim = await self.llm.embedding_dim(config.embedding_model)

    async def get(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        state = await self.store.get(tenant_id, agent_id)
        await self._true_counts(state)
        del state.commit_outbox[:]   # a fresh read nobody else holds: strip it rather than copy it
        await self.resolve_shared(state)
        return state

    async def get_context(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        """The state for a step; re-publishes the last commit's messages if not known published."""
        state = await self.store.get(tenant_id, agent_id)
        await self.commitlog.publish_outbox(state)
        await self._true_counts(state)
        del state.commit_outbox[:]
        await self.resolve_shared(state)
        return state

    async def resolve_shared(self, state: common_pb2.AgentState) -> None:
        """The current values of the state's shared blocks (a read's copy; states store references)."""
        if self.shared is not None and any(b.shared_id for b in state.blocks):
            await self.shared.resolve(state)

    async def _true_counts(self, state: common_pb2.AgentState) -> None:
        """Documents and API inserts do not pass through steps: the index has the true archival count."""
        if self.backend is None:
            return
        try:
            state.archival_count = await self.backend.count_passages(state.config.tenant_id, state.config.id)
        except Exception as exc:
            log.warning("archival count unavailable: %s", exc)

    async def list(self, req: memory_pb2.ListAgentsRequest) -> memory_pb2.ListAgentsResponse:
        page, size = paginate(req.page, req.page_size, 50)
        agent_ids = await self.store.list_ids(req.tenant_id)
        resp = memory_pb2.ListAgentsResponse(total=len(agent_ids), page=page, page_size=size)
        for agent_id in agent_ids[(page - 1) * size: page * size]:
            try:
                resp.agents.append((await self.store.get(req.tenant_id, agent_id)).config)
            except NotFound:  # deleted meanwhile
                continue
        return resp

    async def update(self, req: memory_pb2.UpdateAgentRequest) -> common_pb2.AgentState:
        if not req.update_mask:
            raise InvalidArgument(f"update_mask is empty: name the fields to change ({', '.join(sorted(UPDATABLE))})")
        for field in req.update_mask:
            if field in FIXED:
                raise FailedPrecondition(f"field {field!r} cannot be changed after creation")
            if field not in UPDATABLE:
                raise InvalidArgument(f"unknown or read-only field {field!r} in update_mask")
        check_config(req.config)

        def change(state: common_pb2.AgentState) -> None:
            for field in req.update_mask:
                if field == "limits":
                    state.config.limits.CopyFrom(req.config.limits)
                elif field == "consolidation":
                    state.config.consolidation.CopyFrom(req.config.consolidation)
                elif field == "metadata":
                    state.config.metadata.clear()
                    state.config.metadata.update(req.config.metadata)
                elif field == "tools":  # the client-side tools; attached MCP tools stay
                    kept = [t for t in state.config.tools if t.kind == "mcp"]
                    del state.config.tools[:]
                    state.config.tools.extend([*kept, *req.config.tools])
                    check_tools(state.config.tools)
                elif field == "tool_rules":
                    del state.config.tool_rules[:]
                    state.config.tool_rules.extend(req.config.tool_rules)
                else:
                    setattr(state.config, field, getattr(req.config, field))

        state = public(await self.modify(req.ref.tenant_id, req.ref.agent_id, change))
        if self.shared is not None and "name" in req.update_mask and any(b.shared_id for b in state.blocks):
            await self.shared.relink(state)  # the blocks' indexes show agents by name
        await self.resolve_shared(state)
        return state

    async def edit_tools(self, req: memory_pb2.EditAgentToolsRequest) -> common_pb2.AgentState:
        """Remove tools by name (or kind), then add or replace `put`, in one compare-and-set."""
        check_tools(req.put)

        def change(state: common_pb2.AgentState) -> None:
            gone = set(req.remove) | {t.name for t in req.put}
            kept = [t for t in state.config.tools
                    if t.name not in gone and not (req.remove_kind and t.kind == req.remove_kind)]
            missing = set(req.remove) - {t.name for t in state.config.tools}
            if missing:
                raise NotFound(f"the agent has no tool {sorted(missing)[0]!r}")
            del state.config.tools[:]
            state.config.tools.extend([*kept, *req.put])
            check_tools(state.config.tools)

        return public(await self.modify(req.ref.tenant_id, req.ref.agent_id, change))

    async def modify(self, tenant_id: str, agent_id: str,
                     change: Callable[[common_pb2.AgentState], object]) -> common_pb2.AgentState:
        """Read-change-CAS-write, retried on conflicts (user edits between steps)."""
        for _ in range(CAS_RETRIES):
            state = await self.store.get(tenant_id, agent_id)
            await self.commitlog.publish_outbox(state)
            expected = state.revision
            result = change(state)
            if isinstance(result, Awaitable):
                await result
            try:
                return await self.store.put(state, expected)
            except Conflict:
                continue
        raise Conflict(f"revision conflict: agent {agent_id} kept changing, try again")

    # ---- the step loop -----------------------------------------------------------------------

    async def commit_step(self, req: memory_pb2.CommitStepRequest) -> memory_pb2.CommitStepResponse:
        tenant_id, agent_id = req.ref.tenant_id, req.ref.agent_id
        if not req.step_id:
            raise InvalidArgument("step_id is required")
        # A step that evicts nothing needs the state without its queue (the rest of the state is a
        # few KB, the queue up to hundreds): its messages go on the end of the queue's bytes.
        head = None if req.evict_message_ids else self.store.head(tenant_id, agent_id)
        state = head[0] if head is not None else await self.store.get(tenant_id, agent_id)
        await self.commitlog.publish_outbox(state)  # the previous commit reaches the log first
        if state.last_step_id == req.step_id:
            # A retry whose first reply was lost: the events may not have gone out (dedup by id).
            await self.events.publish(state.pending_events, telemetry.inject())
            return memory_pb2.CommitStepResponse(revision=state.revision, duplicate=True)
        if state.revision != req.expected_revision:
            raise Conflict(f"revision conflict: agent {agent_id} is at revision {state.revision}, "
                           f"the step expected {req.expected_revision}")
        for ev in req.events:  # a step's events are its agent's: they go to that agent's subject
            if (ev.tenant_id or tenant_id) != tenant_id or (ev.agent_id or agent_id) != agent_id:
                raise InvalidArgument(f"event {ev.id!r} belongs to another agent than {agent_id}")
            ev.tenant_id, ev.agent_id = tenant_id, agent_id
        turns_before = state.consolidation.turns_since
        messages = apply_step(state, req)
        del state.commit_outbox[:]
        state.commit_outbox.extend(messages)
        if head is not None:  # only appended to the queue: the write holds just those messages
            state = await self.store.put_step(state, head[1], messages)
        else:
            state = await self.store.put(state, req.expected_revision)
        self.commitlog.publish_soon(state, messages)  # the step is durable now
        # The step's events go out from here, the moment it is durable: watchers hear of it one hop
        # sooner than if the orchestrator published them after this reply.
        await self.events.publish(req.events, telemetry.inject())
        if state.consolidation.turns_since > turns_before and state.config.consolidation.enabled:
            await self._ask_consolidation(state)
        return memory_pb2.CommitStepResponse(revision=state.revision)

    async def _ask_consolidation(self, state: common_pb2.AgentState) -> None:
        """A turn of an opted-in agent completed: when a consolidation may now be due (enough turns,
        or an idle timer to start), ask the consolidator to look (stream CONSOLIDATION)."""
        cfg, status = state.config.consolidation, state.consolidation
        after = cfg.after_turns or CONSOLIDATION_AFTER_TURNS
        if not (0 < after <= status.turns_since or cfg.idle_minutes > 0):
            return
        tenant_id, agent_id = state.config.tenant_id, state.config.id
        req = common_pb2.ConsolidationRequest(tenant_id=tenant_id, agent_id=agent_id, reason="turn",
                                              created_at=ids.now_iso(), runs=status.runs)
        try:
            await self.commitlog.js.publish(
                subjects.consolidation_subject(tenant_id, agent_id), req.SerializeToString(),
                headers={**telemetry.inject(),
                         "Nats-Msg-Id": f"{tenant_id}.{agent_id}.{status.runs}.{status.turns_since}"})
        except Exception as exc:  # the next completed turn asks again
            log.warning("consolidation request of %s not published: %s", agent_id, exc)
