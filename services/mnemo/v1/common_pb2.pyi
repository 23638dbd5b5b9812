from mnemo.v1 import steps_pb2 as _steps_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("id", "role", "text", "tool_calls", "tool_call_id", "name", "created_at", "turn_id", "step", "tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    text: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    name: str
    created_at: str
    turn_id: str
    step: int
    tokens: int
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., text: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., turn_id: _Optional[str] = ..., step: _Optional[int] = ..., tokens: _Optional[int] = ...) -> None: ...

class MemoryBlock(_message.Message):
    __slots__ = ("label", "value", "limit", "shared_id", "shared_with")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SHARED_ID_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_FIELD_NUMBER: _ClassVar[int]
    label: str
    value: str
    limit: int
    shared_id: str
    shared_with: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, label: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ..., shared_id: _Optional[str] = ..., shared_with: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentLimits(_message.Message):
    __slots__ = ("max_steps", "max_tokens_per_turn", "function_result_max_chars", "memory_warning_fraction", "compaction_trigger_fraction", "compaction_target_fraction", "keep_last_messages", "reserved_completion_tokens")
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_TURN_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_RESULT_MAX_CHARS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_WARNING_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_TRIGGER_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_TARGET_FRACTION_FIELD_NUMBER: _ClassVar[int]
    KEEP_LAST_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    RESERVED_COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_steps: int
    max_tokens_per_turn: int
    function_result_max_chars: int
    memory_warning_fraction: float
    compaction_trigger_fraction: float
    compaction_target_fraction: float
    keep_last_messages: int
    reserved_completion_tokens: int
    def __init__(self, max_steps: _Optional[int] = ..., max_tokens_per_turn: _Optional[int] = ..., function_result_max_chars: _Optional[int] = ..., memory_warning_fraction: _Optional[float] = ..., compaction_trigger_fraction: _Optional[float] = ..., compaction_target_fraction: _Optional[float] = ..., keep_last_messages: _Optional[int] = ..., reserved_completion_tokens: _Optional[int] = ...) -> None: ...

class AgentConfig(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "model", "context_window", "preset", "summarizer_model", "embedding_model", "embedding_dim", "limits", "created_at", "metadata", "tools", "tool_rules", "tool_timeout_seconds", "consolidation")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZER_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_RULES_FIELD_NUMBER: _ClassVar[int]
    TOOL_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONSOLIDATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    name: str
    model: str
    context_window: int
    preset: str
    summarizer_model: str
    embedding_model: str
    embedding_dim: int
    limits: AgentLimits
    created_at: str
    metadata: _containers.ScalarMap[str, str]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    tool_rules: _containers.RepeatedCompositeFieldContainer[ToolRule]
    tool_timeout_seconds: int
    consolidation: ConsolidationConfig
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., preset: _Optional[str] = ..., summarizer_model: _Optional[str] = ..., embedding_model: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., limits: _Optional[_Union[AgentLimits, _Mapping]] = ..., created_at: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., tool_rules: _Optional[_Iterable[_Union[ToolRule, _Mapping]]] = ..., tool_timeout_seconds: _Optional[int] = ..., consolidation: _Optional[_Union[ConsolidationConfig, _Mapping]] = ...) -> None: ...

class ConsolidationConfig(_message.Message):
    __slots__ = ("enabled", "model", "after_turns", "idle_minutes", "near_limit_fraction")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    AFTER_TURNS_FIELD_NUMBER: _ClassVar[int]
    IDLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    NEAR_LIMIT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    model: str
    after_turns: int
    idle_minutes: float
    near_limit_fraction: float
    def __init__(self, enabled: _Optional[bool] = ..., model: _Optional[str] = ..., after_turns: _Optional[int] = ..., idle_minutes: _Optional[float] = ..., near_limit_fraction: _Optional[float] = ...) -> None: ...

class ConsolidationStatus(_message.Message):
    __slots__ = ("last_at", "last_checkpoint_id", "turns_since", "last_turn_at", "blocks_rewritten", "summary_refreshed", "merge_proposals", "runs")
    LAST_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_TURN_AT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_REWRITTEN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_REFRESHED_FIELD_NUMBER: _ClassVar[int]
    MERGE_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    last_at: str
    last_checkpoint_id: str
    turns_since: int
    last_turn_at: str
    blocks_rewritten: int
    summary_refreshed: bool
    merge_proposals: int
    runs: int
    def __init__(self, last_at: _Optional[str] = ..., last_checkpoint_id: _Optional[str] = ..., turns_since: _Optional[int] = ..., last_turn_at: _Optional[str] = ..., blocks_rewritten: _Optional[int] = ..., summary_refreshed: _Optional[bool] = ..., merge_proposals: _Optional[int] = ..., runs: _Optional[int] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "parameters_json", "kind", "server_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json: str
    kind: str
    server_id: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ..., kind: _Optional[str] = ..., server_id: _Optional[str] = ...) -> None: ...

class ToolRule(_message.Message):
    __slots__ = ("tool", "terminal", "run_first", "max_calls_per_turn", "requires_approval")
    TOOL_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    RUN_FIRST_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_PER_TURN_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    tool: str
    terminal: bool
    run_first: bool
    max_calls_per_turn: int
    requires_approval: bool
    def __init__(self, tool: _Optional[str] = ..., terminal: _Optional[bool] = ..., run_first: _Optional[bool] = ..., max_calls_per_turn: _Optional[int] = ..., requires_approval: _Optional[bool] = ...) -> None: ...

class PendingCall(_message.Message):
    __slots__ = ("call_id", "name", "arguments", "kind", "deadline", "step", "requested_at")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    arguments: str
    kind: str
    deadline: str
    step: int
    requested_at: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., kind: _Optional[str] = ..., deadline: _Optional[str] = ..., step: _Optional[int] = ..., requested_at: _Optional[str] = ...) -> None: ...

class CallResolution(_message.Message):
    __slots__ = ("call_id", "kind", "text")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    kind: str
    text: str
    def __init__(self, call_id: _Optional[str] = ..., kind: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TurnProgress(_message.Message):
    __slots__ = ("turn_id", "steps_done", "heartbeat_pending", "tokens_used", "completed", "stop_reason", "turn_seq", "recent_calls", "pending_calls", "called_tools", "turn_tools", "max_steps", "stop_after_pending")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_DONE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PENDING_FIELD_NUMBER: _ClassVar[int]
    TOKENS_USED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    TURN_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    PENDING_CALLS_FIELD_NUMBER: _ClassVar[int]
    CALLED_TOOLS_FIELD_NUMBER: _ClassVar[int]
    TURN_TOOLS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    STOP_AFTER_PENDING_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    steps_done: int
    heartbeat_pending: bool
    tokens_used: int
    completed: bool
    stop_reason: str
    turn_seq: int
    recent_calls: _containers.RepeatedScalarFieldContainer[str]
    pending_calls: _containers.RepeatedCompositeFieldContainer[PendingCall]
    called_tools: _containers.RepeatedScalarFieldContainer[str]
    turn_tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    max_steps: int
    stop_after_pending: str
    def __init__(self, turn_id: _Optional[str] = ..., steps_done: _Optional[int] = ..., heartbeat_pending: _Optional[bool] = ..., tokens_used: _Optional[int] = ..., completed: _Optional[bool] = ..., stop_reason: _Optional[str] = ..., turn_seq: _Optional[int] = ..., recent_calls: _Optional[_Iterable[str]] = ..., pending_calls: _Optional[_Iterable[_Union[PendingCall, _Mapping]]] = ..., called_tools: _Optional[_Iterable[str]] = ..., turn_tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., max_steps: _Optional[int] = ..., stop_after_pending: _Optional[str] = ...) -> None: ...

class AgentState(_message.Message):
    __slots__ = ("config", "blocks", "summary", "queue", "revision", "recall_count", "archival_count", "last_memory_edit_at", "last_user_message_at", "turn", "last_step_id", "memory_warning_sent", "evicted_total", "pending_events", "commit_outbox", "stored_base", "stored_depth", "consolidation")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_COUNT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_MEMORY_EDIT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USER_MESSAGE_AT_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_WARNING_SENT_FIELD_NUMBER: _ClassVar[int]
    EVICTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_OUTBOX_FIELD_NUMBER: _ClassVar[int]
    STORED_BASE_FIELD_NUMBER: _ClassVar[int]
    STORED_DEPTH_FIELD_NUMBER: _ClassVar[int]
    CONSOLIDATION_FIELD_NUMBER: _ClassVar[int]
    config: AgentConfig
    blocks: _containers.RepeatedCompositeFieldContainer[MemoryBlock]
    summary: str
    queue: _containers.RepeatedCompositeFieldContainer[Message]
    revision: int
    recall_count: int
    archival_count: int
    last_memory_edit_at: str
    last_user_message_at: str
    turn: TurnProgress
    last_step_id: str
    memory_warning_sent: bool
    evicted_total: int
    pending_events: _containers.RepeatedCompositeFieldContainer[Event]
    commit_outbox: _containers.RepeatedCompositeFieldContainer[Message]
    stored_base: int
    stored_depth: int
    consolidation: ConsolidationStatus
    def __init__(self, config: _Optional[_Union[AgentConfig, _Mapping]] = ..., blocks: _Optional[_Iterable[_Union[MemoryBlock, _Mapping]]] = ..., summary: _Optional[str] = ..., queue: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., revision: _Optional[int] = ..., recall_count: _Optional[int] = ..., archival_count: _Optional[int] = ..., last_memory_edit_at: _Optional[str] = ..., last_user_message_at: _Optional[str] = ..., turn: _Optional[_Union[TurnProgress, _Mapping]] = ..., last_step_id: _Optional[str] = ..., memory_warning_sent: _Optional[bool] = ..., evicted_total: _Optional[int] = ..., pending_events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., commit_outbox: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., stored_base: _Optional[int] = ..., stored_depth: _Optional[int] = ..., consolidation: _Optional[_Union[ConsolidationStatus, _Mapping]] = ...) -> None: ...

class AgentRef(_message.Message):
    __slots__ = ("tenant_id", "agent_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    agent_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("id", "text", "tags", "source_id", "position", "created_at", "metadata", "expires_at")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    source_id: str
    position: int
    created_at: str
    metadata: _containers.ScalarMap[str, str]
    expires_at: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., source_id: _Optional[str] = ..., position: _Optional[int] = ..., created_at: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., expires_at: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("id", "name", "created_at", "revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    created_at: str
    revision: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class Template(_message.Message):
    __slots__ = ("kind", "name", "text", "updated_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    text: str
    updated_at: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., text: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class TokenUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class InnerThought(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class FunctionCall(_message.Message):
    __slots__ = ("name", "arguments", "call_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments: str
    call_id: str
    def __init__(self, name: _Optional[str] = ..., arguments: _Optional[str] = ..., call_id: _Optional[str] = ...) -> None: ...

class FunctionReturn(_message.Message):
    __slots__ = ("name", "status", "result", "call_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    result: str
    call_id: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., result: _Optional[str] = ..., call_id: _Optional[str] = ...) -> None: ...

class AssistantMessage(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class SystemAlert(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class UsageReport(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens", "model", "context_tokens", "context_window", "steps", "context", "timing")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    model: str
    context_tokens: int
    context_window: int
    steps: int
    context: _steps_pb2.ContextBreakdown
    timing: _steps_pb2.StepTiming
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., model: _Optional[str] = ..., context_tokens: _Optional[int] = ..., context_window: _Optional[int] = ..., steps: _Optional[int] = ..., context: _Optional[_Union[_steps_pb2.ContextBreakdown, _Mapping]] = ..., timing: _Optional[_Union[_steps_pb2.StepTiming, _Mapping]] = ...) -> None: ...

class TurnCompleted(_message.Message):
    __slots__ = ("stop_reason", "usage", "steps")
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    stop_reason: str
    usage: UsageReport
    steps: int
    def __init__(self, stop_reason: _Optional[str] = ..., usage: _Optional[_Union[UsageReport, _Mapping]] = ..., steps: _Optional[int] = ...) -> None: ...

class TurnFailed(_message.Message):
    __slots__ = ("error", "code")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    error: str
    code: str
    def __init__(self, error: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ToolCallRequested(_message.Message):
    __slots__ = ("call_id", "name", "arguments", "deadline")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    arguments: str
    deadline: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., deadline: _Optional[str] = ...) -> None: ...

class ApprovalRequested(_message.Message):
    __slots__ = ("call_id", "name", "arguments", "deadline")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    arguments: str
    deadline: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., arguments: _Optional[str] = ..., deadline: _Optional[str] = ...) -> None: ...

class TurnPaused(_message.Message):
    __slots__ = ("call_ids",)
    CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    call_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, call_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BlockChange(_message.Message):
    __slots__ = ("label", "before", "after")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    label: str
    before: str
    after: str
    def __init__(self, label: _Optional[str] = ..., before: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...

class MergeProposal(_message.Message):
    __slots__ = ("keep_id", "drop_ids", "similarity", "text")
    KEEP_ID_FIELD_NUMBER: _ClassVar[int]
    DROP_IDS_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    keep_id: str
    drop_ids: _containers.RepeatedScalarFieldContainer[str]
    similarity: float
    text: str
    def __init__(self, keep_id: _Optional[str] = ..., drop_ids: _Optional[_Iterable[str]] = ..., similarity: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class MemoryConsolidated(_message.Message):
    __slots__ = ("checkpoint_id", "blocks", "summary_before", "summary_after", "merges", "diff", "model", "reason")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_AFTER_FIELD_NUMBER: _ClassVar[int]
    MERGES_FIELD_NUMBER: _ClassVar[int]
    DIFF_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    blocks: _containers.RepeatedCompositeFieldContainer[BlockChange]
    summary_before: str
    summary_after: str
    merges: _containers.RepeatedCompositeFieldContainer[MergeProposal]
    diff: str
    model: str
    reason: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[BlockChange, _Mapping]]] = ..., summary_before: _Optional[str] = ..., summary_after: _Optional[str] = ..., merges: _Optional[_Iterable[_Union[MergeProposal, _Mapping]]] = ..., diff: _Optional[str] = ..., model: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "seq", "turn_id", "agent_id", "tenant_id", "created_at", "step", "id", "inner_thought", "function_call", "function_return", "assistant_message", "system_alert", "usage", "turn_completed", "turn_failed", "tool_call_requested", "approval_requested", "turn_paused", "memory_consolidated")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INNER_THOUGHT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_CALL_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_RETURN_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ALERT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TURN_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TURN_FAILED_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    TURN_PAUSED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CONSOLIDATED_FIELD_NUMBER: _ClassVar[int]
    type: str
    seq: int
    turn_id: str
    agent_id: str
    tenant_id: str
    created_at: str
    step: int
    id: str
    inner_thought: InnerThought
    function_call: FunctionCall
    function_return: FunctionReturn
    assistant_message: AssistantMessage
    system_alert: SystemAlert
    usage: UsageReport
    turn_completed: TurnCompleted
    turn_failed: TurnFailed
    tool_call_requested: ToolCallRequested
    approval_requested: ApprovalRequested
    turn_paused: TurnPaused
    memory_consolidated: MemoryConsolidated
    def __init__(self, type: _Optional[str] = ..., seq: _Optional[int] = ..., turn_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., created_at: _Optional[str] = ..., step: _Optional[int] = ..., id: _Optional[str] = ..., inner_thought: _Optional[_Union[InnerThought, _Mapping]] = ..., function_call: _Optional[_Union[FunctionCall, _Mapping]] = ..., function_return: _Optional[_Union[FunctionReturn, _Mapping]] = ..., assistant_message: _Optional[_Union[AssistantMessage, _Mapping]] = ..., system_alert: _Optional[_Union[SystemAlert, _Mapping]] = ..., usage: _Optional[_Union[UsageReport, _Mapping]] = ..., turn_completed: _Optional[_Union[TurnCompleted, _Mapping]] = ..., turn_failed: _Optional[_Union[TurnFailed, _Mapping]] = ..., tool_call_requested: _Optional[_Union[ToolCallRequested, _Mapping]] = ..., approval_requested: _Optional[_Union[ApprovalRequested, _Mapping]] = ..., turn_paused: _Optional[_Union[TurnPaused, _Mapping]] = ..., memory_consolidated: _Optional[_Union[MemoryConsolidated, _Mapping]] = ...) -> None: ...

class TurnRequest(_message.Message):
    __slots__ = ("turn_id", "tenant_id", "agent_id", "message", "role", "created_at", "max_steps", "resolution", "tools")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    tenant_id: str
    agent_id: str
    message: str
    role: str
    created_at: str
    max_steps: int
    resolution: CallResolution
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, turn_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., message: _Optional[str] = ..., role: _Optional[str] = ..., created_at: _Optional[str] = ..., max_steps: _Optional[int] = ..., resolution: _Optional[_Union[CallResolution, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class ConsolidationRequest(_message.Message):
    __slots__ = ("tenant_id", "agent_id", "reason", "created_at", "runs")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    agent_id: str
    reason: str
    created_at: str
    runs: int
    def __init__(self, tenant_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[str] = ..., runs: _Optional[int] = ...) -> None: ...
