"""Background memory consolidation (docs/architecture.md), as plain data without I/O: when an agent is
due, what the model is shown and asked, how its answer is checked, and the one step it commits.

The model sees the agent's own core blocks that are near their limit, the recursive summary, the
most recent messages (what is recent wins over what is stale or contradicted) and groups of archival
passages found to say the same thing. It answers with one `consolidate_memory` call: new block values
(each must fit its limit), a new summary, and which passage of each group to keep. The step it leads
to changes blocks and summary only, records the merges as proposals (archival memory is not rolled
back by a checkpoint, so nothing is deleted behind the user's back: `DELETE /v1/agents/{id}/archival`
with the proposed ids applies them), and carries a `memory_consolidated` event with the diff and
the checkpoint taken first. Shared blocks are never rewritten: other agents write them too.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mnemo.common import ids
from mnemo.common.agent_fields import CONSOLIDATION_AFTER_TURNS
from mnemo.orchestrator.events import StepEvents
from mnemo.v1 import common_pb2, llm_pb2, memory_pb2

TOOL_NAME = "consolidate_memory"
DEFAULT_NEAR_LIMIT = 0.8        # ConsolidationConfig.near_limit_fraction 0
MAX_GROUPS = 20                 # duplicate groups shown to the model
MAX_GROUP_PASSAGES = 5
MAX_PASSAGE_CHARS = 400
RECENT_MESSAGES = 12
MAX_RECENT_CHARS = 600
MAX_SUMMARY_CHARS = 8000

INSTRUCTIONS = (
    "You maintain the long-term memory of an AI agent between its conversations. You get JSON with: "
    "`blocks` (core memory blocks close to their character limit), `summary` (the recursive summary of "
    "older conversation), `recent` (the latest messages) and `duplicates` (groups of archival passages "
    "that seem to say the same thing). Call consolidate_memory once with: `blocks`, a rewritten value for "
    "each block you were given, within its limit: merge repeated lines, drop what is stale or "
    "contradicted by later lines or by the recent messages, keep what is recent and still true; "
    "`summary`, the summary made shorter and clearer without losing facts; `merges`, for each duplicate "
    "group you agree with, the id of the passage to keep and the ids to drop. Leave out what needs no change."
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "blocks": {"type": "array", "description": "new values of the blocks given", "items": {
            "type": "object", "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
            "required": ["label", "value"]}},
        "summary": {"type": "string", "description": "the refreshed summary"},
        "merges": {"type": "array", "description": "duplicate passages to merge", "items": {
            "type": "object", "properties": {"keep_id": {"type": "string"},
                                             "drop_ids": {"type": "array", "items": {"type": "string"}}},
            "required": ["keep_id", "drop_ids"]}},
    },
    "required": [],
}
TOOL = llm_pb2.Tool(name=TOOL_NAME, description="Save the consolidated memory.", parameters_json=json.dumps(SCHEMA))


# ---- when -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Due:
    """`reason` when a consolidation should run now; else `wait` seconds until it may be (0: never
    by this request)."""

    reason: str | None = None
    wait: float = 0.0


def due(state: common_pb2.AgentState, request: common_pb2.ConsolidationRequest, now: datetime) -> Due:
    cfg, status = state.config.consolidation, state.consolidation
    if not cfg.enabled:
        return Due()
    if request.reason == "requested":
        return Due("requested") if status.runs <= request.runs else Due()  # (ran since it was asked)
    if status.runs > request.runs or status.turns_since == 0:
        return Due()  # a consolidation ran since this request was made
    after = cfg.after_turns or CONSOLIDATION_AFTER_TURNS
    if 0 < after <= status.turns_since:
        return Due("after_turns")
    if cfg.idle_minutes > 0 and status.last_turn_at:
        if request.created_at and status.last_turn_at > request.created_at:
            return Due()  # a later turn asked again: its request takes over the idle timer
        idle = (now - ids.parse_time(status.last_turn_at)).total_seconds()
        left = cfg.idle_minutes * 60 - idle
        return Due("idle") if left <= 0 else Due(wait=left)
    return Due()


# ---- what the model sees ---------------------------------------------------------------------------

@dataclass
class Task:
    blocks: list[common_pb2.MemoryBlock]
    summary: str
    groups: list[memory_pb2.DuplicateGroup]
    recent: list[str]

    @property
    def empty(self) -> bool:
        return not (self.blocks or self.summary or self.groups)


def task_of(state: common_pb2.AgentState, groups: list[memory_pb2.DuplicateGroup]) -> Task:
    near = state.config.consolidation.near_limit_fraction or DEFAULT_NEAR_LIMIT
    blocks = [b for b in state.blocks if not b.shared_id and b.limit and len(b.value) >= near * b.limit]
    recent = []
    for m in state.queue[-RECENT_MESSAGES:]:
        text = m.text
        if m.role == "assistant" and m.tool_calls:
            text = " ".join([text, *(f"[{c.name} {c.arguments}]" for c in m.tool_calls)]).strip()
        if text:
            recent.append(f"{m.role}: {text[:MAX_RECENT_CHARS]}")
    shown = [g for g in groups if len(g.passages) > 1][:MAX_GROUPS]
    return Task(blocks, state.summary, shown, recent)


def chat_request(task: Task, state: common_pb2.AgentState, model: str) -> llm_pb2.ChatRequest:
    payload = {
        "blocks": [{"label": b.label, "limit": b.limit, "value": b.value} for b in task.blocks],
        "summary": task.summary,
        "recent": task.recent,
        "duplicates": [{"similarity": round(g.similarity, 3), "passages": [
            {"id": p.id, "created_at": p.created_at, "text": p.text[:MAX_PASSAGE_CHARS]}
            for p in g.passages[:MAX_GROUP_PASSAGES]]} for g in task.groups],
    }
    budget = sum(b.limit for b in task.blocks) + len(task.summary) + 200 * len(task.groups)
    return llm_pb2.ChatRequest(
        model=model, purpose="consolidation", tools=[TOOL], tool_choice=TOOL_NAME, temperature=0.0,
        max_tokens=max(512, min(8192, budget // 3 + 256)), tenant_id=state.config.tenant_id,
        agent_id=state.config.id,
        messages=[llm_pb2.ChatMessage(role="system", content=INSTRUCTIONS),
                  llm_pb2.ChatMessage(role="user", content=json.dumps(payload, ensure_ascii=False))])


# ---- its answer ---------------------------------------------------------------------------------------

@dataclass
class Plan:
    blocks: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    merges: list[common_pb2.MergeProposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what was refused, and why


def parse_reply(response: llm_pb2.ChatResponse, task: Task) -> Plan:
    """The model's call, checked: offered blocks only, each within its limit; merges within one offered
    group. Anything else is left out (with a note)."""
    plan = Plan()
    call = next((c for c in response.message.tool_calls if c.name == TOOL_NAME), None)
    if call is None:
        plan.notes.append("the model made no consolidate_memory call")
        return plan
    try:
        args = json.loads(call.arguments or "{}")
    except ValueError:
        plan.notes.append("the model's arguments were not JSON")
        return plan
    if not isinstance(args, dict):
        plan.notes.append("the model's arguments were not an object")
        return plan
    offered = {b.label: b for b in task.blocks}
    for item in args.get("blocks") or []:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            continue
        block = offered.get(str(item.get("label")))
        if block is None:
            plan.notes.append(f"block {item.get('label')!r} was not offered for rewriting")
        elif len(item["value"]) > block.limit:
            plan.notes.append(f"block {block.label!r}: {len(item['value'])} characters, over its limit "
                              f"of {block.limit}; kept as it was")
        elif item["value"] != block.value:
            plan.blocks[block.label] = item["value"]
    summary = args.get("summary")
    if isinstance(summary, str) and task.summary and summary.strip() and summary != task.summary:
        plan.summary = summary.strip()[:MAX_SUMMARY_CHARS]
    groups = [{p.id: p for p in g.passages} for g in task.groups]
    for item in args.get("merges") or []:
        if not isinstance(item, dict):
            continue
        keep, drops = str(item.get("keep_id", "")), [str(d) for d in item.get("drop_ids") or []]
        group = next((g for g in groups if keep in g), None)
        drops = [d for d in dict.fromkeys(drops) if group is not None and d in group and d != keep]
        if group is None or not drops:
            plan.notes.append(f"merge keeping {keep!r} does not match a duplicate group")
            continue
        sim = next(g.similarity for g in task.groups if keep in {p.id for p in g.passages})
        plan.merges.append(common_pb2.MergeProposal(keep_id=keep, drop_ids=drops, similarity=sim,
                                                    text=group[keep].text))
    return plan


# ---- the step --------------------------------------------------------------------------------------

def _diff(name: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{name}", tofile=f"b/{name}", lineterm="\n"))


def commit_of(state: common_pb2.AgentState, task: Task, plan: Plan, *, checkpoint_id: str, reason: str,
              step_id: str, model: str, now: str) -> memory_pb2.CommitStepRequest:
    """The consolidation step: changed blocks and summary, the status, one memory_consolidated event."""
    changes = []
    for b in state.blocks:
        if b.label in plan.blocks:
            changes.append(common_pb2.BlockChange(label=b.label, before=b.value, after=plan.blocks[b.label]))
    summary = plan.summary if plan.summary is not None else state.summary
    diff = "".join(_diff(f"blocks/{c.label}", c.before, c.after) for c in changes)
    if summary != state.summary:
        diff += _diff("summary", state.summary, summary)
    event_body = common_pb2.MemoryConsolidated(
        checkpoint_id=checkpoint_id, blocks=changes, summary_before=state.summary, summary_after=summary,
        merges=plan.merges, diff=diff, model=model, reason=reason)
    turn_id = step_id.rsplit(":", 1)[0]
    events = StepEvents(turn_id, state.config.tenant_id, state.config.id, 1)
    events.add("memory_consolidated", memory_consolidated=event_body)
    status = common_pb2.ConsolidationStatus()
    status.CopyFrom(state.consolidation)
    status.last_at, status.last_checkpoint_id, status.turns_since = now, checkpoint_id, 0
    status.blocks_rewritten, status.summary_refreshed = len(changes), summary != state.summary
    status.merge_proposals, status.runs = len(plan.merges), state.consolidation.runs + 1
    return memory_pb2.CommitStepRequest(
        ref=common_pb2.AgentRef(tenant_id=state.config.tenant_id, agent_id=state.config.id),
        expected_revision=state.revision, step_id=step_id,
        blocks=[common_pb2.MemoryBlock(label=c.label, value=c.after) for c in changes],
        summary_changed=summary != state.summary, summary=summary, memory_warning_sent=state.memory_warning_sent,
        events=events.events, consolidation=status)
