"""Request bodies of the REST API (pydantic: invalid fields are 422 with their paths)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mnemo.v1 import common_pb2, memory_pb2

Name = Field(default=None, max_length=200)
Text = Field(default=None, max_length=100_000)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsBody(_Body):
    max_steps: int | None = Field(default=None, ge=0, le=1000)
    max_tokens_per_turn: int | None = Field(default=None, ge=0, le=100_000_000)
    function_result_max_chars: int | None = Field(default=None, ge=0, le=10_000_000)
    memory_warning_fraction: float | None = Field(default=None, ge=0, le=1)
    compaction_trigger_fraction: float | None = Field(default=None, ge=0, le=1)
    compaction_target_fraction: float | None = Field(default=None, ge=0, le=1)
    keep_last_messages: int | None = Field(default=None, ge=0, le=10_000)
    reserved_completion_tokens: int | None = Field(default=None, ge=0, le=1_000_000)

    def to_proto(self) -> common_pb2.AgentLimits:
        return common_pb2.AgentLimits(**self.model_dump(exclude_none=True))


ToolName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ToolBody(_Body):
    """A client-side tool, as in the OpenAI tools format: `parameters` is a JSON Schema."""

    name: str = ToolName
    description: str = Field(default="", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_proto(self) -> common_pb2.ToolSpec:
        return common_pb2.ToolSpec(name=self.name, description=self.description, kind="client",
                                   parameters_json=json.dumps(self.parameters))


class ToolRuleBody(_Body):
    tool: str = ToolName
    terminal: bool = False
    run_first: bool = False
    max_calls_per_turn: int = Field(default=0, ge=0, le=10_000)
    requires_approval: bool = False

    def to_proto(self) -> common_pb2.ToolRule:
        return common_pb2.ToolRule(**self.model_dump())


Tools = Field(default=None, max_length=64)
Rules = Field(default=None, max_length=128)
ToolTimeout = Field(default=None, ge=0, le=7 * 24 * 3600)
class ConsolidationBody(_Body):
    enabled: bool = False
    model: str | None = Field(default=None, max_length=200)
    after_turns: int | None = Field(default=None, ge=-1, le=1_000_000)
    idle_minutes: float | None = Field(default=None, ge=0, le=525_600)
    near_limit_fraction: float | None = Field(default=None, ge=0, le=1)

    def to_proto(self) -> common_pb2.ConsolidationConfig:
        return common_pb2.ConsolidationConfig(**self.model_dump(exclude_none=True))


class BlockBody(_Body):
    label: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    value: str = Field(default="", max_length=100_000)
    limit: int = Field(default=0, ge=0, le=1_000_000)


class AgentCreate(_Body):
    name: str | None = Name
    persona: str | None = Text
    persona_name: str | None = Name
    human: str | None = Text
    human_name: str | None = Name
    model: str | None = Name
    context_window: int | None = Field(default=None, ge=0, le=10_000_000)
    limits: LimitsBody | None = None
    preset: str | None = Name
    summarizer_model: str | None = Name
    embedding_model: str | None = Name
    blocks: list[BlockBody] | None = Field(default=None, max_length=50)
    metadata: dict[str, str] | None = Field(default=None, max_length=100)
    tools: list[ToolBody] | None = Tools
    tool_rules: list[ToolRuleBody] | None = Rules
    tool_timeout_seconds: int | None = ToolTimeout
    consolidation: ConsolidationBody | None = None

    def to_proto(self) -> memory_pb2.CreateAgentRequest:
        cfg = common_pb2.AgentConfig(
            name=self.name or "", model=self.model or "", context_window=self.context_window or 0,
            preset=self.preset or "", summarizer_model=self.summarizer_model or "",
            embedding_model=self.embedding_model or "", metadata=self.metadata or {},
            tools=[t.to_proto() for t in self.tools or []], tool_rules=[r.to_proto() for r in self.tool_rules or []],
            tool_timeout_seconds=self.tool_timeout_seconds or 0)
        if self.limits is not None:
            cfg.limits.CopyFrom(self.limits.to_proto())
        if self.consolidation is not None:
            cfg.consolidation.CopyFrom(self.consolidation.to_proto())
        return memory_pb2.CreateAgentRequest(
            config=cfg, persona=self.persona or "", persona_name=self.persona_name or "",
            human=self.human or "", human_name=self.human_name or "",
            blocks=[common_pb2.MemoryBlock(**b.model_dump()) for b in self.blocks or []])


class AgentUpdate(_Body):
    name: str | None = Name
    model: str | None = Name
    context_window: int | None = Field(default=None, ge=0, le=10_000_000)
    limits: LimitsBody | None = None
    preset: str | None = Name
    summarizer_model: str | None = Name
    metadata: dict[str, str] | None = Field(default=None, max_length=100)
    tools: list[ToolBody] | None = Tools   # replaces the client-side tools (attached MCP tools stay)
    tool_rules: list[ToolRuleBody] | None = Rules
    tool_timeout_seconds: int | None = ToolTimeout
    consolidation: ConsolidationBody | None = None

    def to_proto(self) -> tuple[common_pb2.AgentConfig, list[str]]:
        fields = self.model_dump(exclude_none=True)
        cfg = common_pb2.AgentConfig()
        for key, value in fields.items():
            if key == "limits":
                cfg.limits.CopyFrom(self.limits.to_proto())  # type: ignore[union-attr]
            elif key == "consolidation":
                cfg.consolidation.CopyFrom(self.consolidation.to_proto())  # type: ignore[union-attr]
            elif key == "metadata":
                cfg.metadata.update(value)
            elif key == "tools":
                cfg.tools.extend([t.to_proto() for t in self.tools or []])
            elif key == "tool_rules":
                cfg.tool_rules.extend([r.to_proto() for r in self.tool_rules or []])
            else:
                setattr(cfg, key, value)
        return cfg, sorted(fields)


class MessageBody(_Body):
    message: str = Field(min_length=1)
    role: Literal["user", "system"] = "user"
    max_steps: int = Field(default=0, ge=0, le=1000)
    tools: list[ToolBody] | None = Tools   # client-side tools of this turn only

    def tool_specs(self) -> list[common_pb2.ToolSpec]:
        return [t.to_proto() for t in self.tools or []]


class ToolResultBody(_Body):
    """The result of a client-side tool's call: `result` (text or any JSON), or `error`."""

    call_id: str = Field(min_length=1, max_length=200)
    result: Any = None
    error: str | None = Field(default=None, max_length=1_000_000)

    def text(self) -> str:
        if self.error is not None:
            return self.error
        if isinstance(self.result, str):
            return self.result
        return "" if self.result is None else json.dumps(self.result, ensure_ascii=False)


class ApprovalBody(_Body):
    call_id: str = Field(min_length=1, max_length=200)
    approve: bool
    reason: str = Field(default="", max_length=10_000)


class McpServerBody(_Body):
    """An MCP server: a stdio command (run by the orchestrators) or a streamable-HTTP URL."""

    name: str = Field(min_length=1, max_length=200)
    transport: Literal["stdio", "http"]
    command: str = Field(default="", max_length=4000)
    args: list[str] = Field(default_factory=list, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)
    url: str = Field(default="", max_length=4000)
    headers: dict[str, str] = Field(default_factory=dict, max_length=64)
    timeout_seconds: float = Field(default=0, ge=0, le=3600)
    max_result_chars: int = Field(default=0, ge=0, le=10_000_000)

    def to_proto(self) -> memory_pb2.McpServer:
        return memory_pb2.McpServer(**self.model_dump())


class AttachToolsBody(_Body):
    server_id: str = Field(min_length=1, max_length=200)
    tools: list[str] = Field(default_factory=list, max_length=64)   # empty: every tool of the server


class BlockUpdate(_Body):
    value: str = Field(max_length=1_000_000)
    limit: int = Field(default=0, ge=0, le=1_000_000)


class RecallMessage(_Body):
    role: Literal["user", "assistant", "system", "tool"]
    text: str = Field(max_length=1_000_000)
    created_at: str | None = Field(default=None, max_length=64)
    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class RecallImport(_Body):
    messages: list[RecallMessage] = Field(min_length=1, max_length=10_000)

    def to_proto(self) -> list[common_pb2.Message]:
        return [common_pb2.Message(**m.model_dump(exclude_none=True)) for m in self.messages]


Expiry = Field(default=None, max_length=64, description="RFC 3339: hidden from search from then on, deleted later")
Ttl = Field(default=None, ge=1, le=100 * 365 * 86_400, description="or: expires this many seconds after the insert")


class PassageBody(_Body):
    text: str = Field(min_length=1, max_length=1_000_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] | None = Field(default=None, max_length=100)
    expires_at: str | None = Expiry
    ttl_seconds: int | None = Ttl

    def to_proto(self) -> memory_pb2.PassageInput:
        return memory_pb2.PassageInput(text=self.text, tags=self.tags, id=self.id or "",
                                       metadata=self.metadata or {}, expires_at=self.expires_at or "",
                                       ttl_seconds=self.ttl_seconds or 0)


class ArchivalInsert(_Body):
    text: str | None = Field(default=None, min_length=1, max_length=1_000_000)
    tags: list[str] = Field(default_factory=list, max_length=50)
    expires_at: str | None = Expiry
    ttl_seconds: int | None = Ttl
    passages: list[PassageBody] | None = Field(default=None, min_length=1, max_length=1000)
    dedup: Literal["on", "off"] | None = Field(
        default=None, description="deduplication for this insert (default: the service's setting)")

    def to_proto(self) -> list[memory_pb2.PassageInput]:
        out = [p.to_proto() for p in self.passages or []]
        if self.text is not None:
            out.insert(0, memory_pb2.PassageInput(text=self.text, tags=self.tags, expires_at=self.expires_at or "",
                                                  ttl_seconds=self.ttl_seconds or 0))
        return out


class SharedBlockCreate(_Body):
    label: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    value: str = Field(default="", max_length=100_000)
    limit: int = Field(default=0, ge=0, le=100_000)


class SharedBlockUpdate(_Body):
    value: str | None = Field(default=None, max_length=100_000)
    limit: int = Field(default=0, ge=0, le=100_000)


class CheckpointCreate(_Body):
    name: str | None = Name


class PopBody(_Body):
    count: int = Field(default=1, ge=1, le=1000)


class RewriteBody(_Body):
    text: str = Field(min_length=1, max_length=1_000_000)
    message_id: str | None = Field(default=None, max_length=200)


class TemplateCreate(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    text: str = Field(max_length=100_000)


class TemplateUpdate(_Body):
    text: str = Field(max_length=100_000)


class TenantCreate(_Body):
    name: str = Field(min_length=1, max_length=200)


class TenantLimitsBody(_Body):
    """A tenant's own rate limits: requests per second (0: no limit) and burst; a null rate puts the
    tenant back on the gateway's defaults."""

    rate_per_second: float | None = Field(ge=0, le=1_000_000)
    burst: int = Field(default=200, ge=1, le=10_000_000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(max_length=32)
    content: str | list[dict[str, object]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; `model` is "agent:<id>". Unknown fields are ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
