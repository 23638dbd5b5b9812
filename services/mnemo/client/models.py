"""Typed results of the Mnemo REST API. Unknown fields are kept (forward compatible)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class MemoryBlock(_Model):
    label: str
    value: str = ""
    limit: int = 0
    shared_id: str = ""                                     # a shared block: its id
    shared_with: list[str] = Field(default_factory=list)    # the other agents it is attached to


class MemoryCounts(_Model):
    recall: int = 0
    archival: int = 0
    queue: int = 0


class PendingCall(_Model):
    call_id: str
    name: str = ""
    arguments: Any = ""
    kind: str = ""          # client (waits for a result) | approval
    deadline: str = ""


class PendingCalls(_Model):
    turn_id: str = ""
    calls: list[PendingCall] = Field(default_factory=list)


class ToolSpec(_Model):
    name: str
    description: str = ""
    parameters_json: str = ""
    kind: str = ""
    server_id: str = ""


class McpServer(_Model):
    id: str
    name: str = ""
    transport: str = ""
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = 0
    max_result_chars: int = 0
    created_at: str = ""


class Agent(_Model):
    id: str
    name: str = ""
    model: str = ""
    context_window: int = 0
    preset: str = ""
    limits: dict[str, Any] = Field(default_factory=dict)
    blocks: list[MemoryBlock] = Field(default_factory=list)
    created_at: str = ""
    counts: MemoryCounts | None = None
    embedding_model: str = ""
    embedding_dim: int = 0
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    tool_timeout_seconds: int = 0
    consolidation: dict[str, Any] = Field(default_factory=dict)          # enabled, model, after_turns, ...
    consolidation_status: dict[str, Any] = Field(default_factory=dict)   # last_at, last_checkpoint_id, ...

    def block(self, label: str) -> MemoryBlock | None:
        return next((b for b in self.blocks if b.label == label), None)


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Event(_Model):
    """One agent event: `type` is inner_thought, function_call, function_return, assistant_message,
    system_alert, usage, turn_completed, turn_failed, tool_call_requested, approval_requested or
    turn_paused; the type's fields sit beside it."""

    type: str
    seq: int = 0
    turn_id: str = ""
    agent_id: str = ""
    created_at: str = ""
    step: int = 0
    text: str | None = None          # inner_thought, assistant_message, system_alert
    name: str | None = None          # function_call, function_return
    arguments: Any = None            # function_call (JSON text or object)
    status: str | None = None        # function_return: ok | error
    result: Any = None               # function_return
    stop_reason: str | None = None   # turn_completed
    error: str | None = None         # turn_failed
    usage: dict[str, Any] | None = None
    call_id: str | None = None       # function_call, function_return, tool_call_requested, approval_requested
    deadline: str | None = None      # tool_call_requested, approval_requested: when the call times out
    call_ids: list[str] | None = None  # turn_paused: the calls the turn waits on

    @property
    def is_final(self) -> bool:
        return self.type in ("turn_completed", "turn_failed")

    @property
    def ends_wait(self) -> bool:
        """The turn ended, or paused on calls for the caller to answer."""
        return self.is_final or self.type == "turn_paused"


class TurnResult(_Model):
    turn_id: str
    stop_reason: str = ""
    events: list[Event] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)

    @property
    def paused(self) -> bool:
        """The turn waits on calls (`pending_calls` of the agent, answered with tool_result / approve)."""
        return self.stop_reason == "paused"

    @property
    def replies(self) -> list[str]:
        """The texts the agent sent to the user (assistant_message events)."""
        return [e.text or "" for e in self.events if e.type == "assistant_message"]

    @property
    def reply(self) -> str:
        return "\n".join(self.replies)


class CoreMemory(_Model):
    blocks: list[MemoryBlock] = Field(default_factory=list)
    summary: str = ""
    counts: MemoryCounts | None = None
    last_memory_edit_at: str = ""


class ToolCall(_Model):
    id: str = ""
    name: str = ""
    arguments: Any = ""


class Message(_Model):
    id: str = ""
    role: str = ""
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str = ""
    name: str = ""
    created_at: str = ""
    turn_id: str = ""
    step: int = 0


class RecallHit(_Model):
    message: Message
    score: float = 0.0


class Passage(_Model):
    id: str = ""
    text: str = ""
    tags: list[str] = Field(default_factory=list)
    source_id: str = ""
    position: int = 0
    created_at: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    expires_at: str = ""


class ArchivalHit(_Model):
    passage: Passage
    score: float = 0.0


class Page(_Model):
    total: int = 0
    page: int = 1
    page_size: int = 0


class RecallPage(Page):
    hits: list[RecallHit] = Field(default_factory=list)


class ArchivalPage(Page):
    hits: list[ArchivalHit] = Field(default_factory=list)


class Checkpoint(_Model):
    id: str
    name: str = ""
    created_at: str = ""
    revision: int = 0


class Template(_Model):
    kind: str = ""
    name: str
    text: str = ""
    updated_at: str = ""


class IngestResult(_Model):
    source_id: str = ""
    bytes_read: int = 0
    passages: int = 0
    done: bool = True


class InsertResult(_Model):
    """Per passage: its id (or the id of the stored passage it duplicates) and whether it was a duplicate."""

    ids: list[str] = Field(default_factory=list)
    duplicate: list[bool] = Field(default_factory=list)
    inserted: int = 0
    deduplicated: int = 0
    expiring: int = 0


class BlockAgent(_Model):
    agent_id: str
    name: str = ""
    attached_at: str = ""


class SharedBlock(_Model):
    id: str
    label: str = ""
    value: str = ""
    limit: int = 0
    created_at: str = ""
    updated_at: str = ""
    agents: list[BlockAgent] = Field(default_factory=list)


class AttachResult(_Model):
    block: SharedBlock
    replaced: bool = False
    checkpoint_id: str = ""     # taken before replacing the agent's own block of that label
