from google.protobuf import empty_pb2 as _empty_pb2
from mnemo.v1 import common_pb2 as _common_pb2
from mnemo.v1 import console_pb2 as _console_pb2
from mnemo.v1 import llm_pb2 as _llm_pb2
from mnemo.v1 import memory_pb2 as _memory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Agent(_message.Message):
    __slots__ = ("id", "name", "model", "context_window", "preset", "limits", "blocks", "created_at", "counts", "embedding_model", "embedding_dim", "tools", "tool_rules", "tool_timeout_seconds", "consolidation", "consolidation_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_RULES_FIELD_NUMBER: _ClassVar[int]
    TOOL_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONSOLIDATION_FIELD_NUMBER: _ClassVar[int]
    CONSOLIDATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    model: str
    context_window: int
    preset: str
    limits: _common_pb2.AgentLimits
    blocks: _containers.RepeatedCompositeFieldContainer[_common_pb2.MemoryBlock]
    created_at: str
    counts: _memory_pb2.MemoryCounts
    embedding_model: str
    embedding_dim: int
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolSpec]
    tool_rules: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolRule]
    tool_timeout_seconds: int
    consolidation: _common_pb2.ConsolidationConfig
    consolidation_status: _common_pb2.ConsolidationStatus
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., preset: _Optional[str] = ..., limits: _Optional[_Union[_common_pb2.AgentLimits, _Mapping]] = ..., blocks: _Optional[_Iterable[_Union[_common_pb2.MemoryBlock, _Mapping]]] = ..., created_at: _Optional[str] = ..., counts: _Optional[_Union[_memory_pb2.MemoryCounts, _Mapping]] = ..., embedding_model: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolSpec, _Mapping]]] = ..., tool_rules: _Optional[_Iterable[_Union[_common_pb2.ToolRule, _Mapping]]] = ..., tool_timeout_seconds: _Optional[int] = ..., consolidation: _Optional[_Union[_common_pb2.ConsolidationConfig, _Mapping]] = ..., consolidation_status: _Optional[_Union[_common_pb2.ConsolidationStatus, _Mapping]] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("agent_id", "message", "idempotency_key", "role", "max_steps", "tools")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    message: str
    idempotency_key: str
    role: str
    max_steps: int
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolSpec]
    def __init__(self, agent_id: _Optional[str] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., role: _Optional[str] = ..., max_steps: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[_common_pb2.ToolSpec, _Mapping]]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("agent_id", "after_seq", "follow", "turn_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    after_seq: int
    follow: bool
    turn_id: str
    def __init__(self, agent_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., follow: _Optional[bool] = ..., turn_id: _Optional[str] = ...) -> None: ...

class UpdateMemoryBlockRequest(_message.Message):
    __slots__ = ("agent_id", "label", "value", "limit")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    label: str
    value: str
    limit: int
    def __init__(self, agent_id: _Optional[str] = ..., label: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PublicSearchRecallRequest(_message.Message):
    __slots__ = ("agent_id", "query", "start", "end", "role", "page", "page_size")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    query: str
    start: str
    end: str
    role: str
    page: int
    page_size: int
    def __init__(self, agent_id: _Optional[str] = ..., query: _Optional[str] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., role: _Optional[str] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class PublicImportRecallRequest(_message.Message):
    __slots__ = ("agent_id", "messages")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    def __init__(self, agent_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ...) -> None: ...

class PublicSearchArchivalRequest(_message.Message):
    __slots__ = ("agent_id", "query", "tags", "page", "page_size")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    query: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    page: int
    page_size: int
    def __init__(self, agent_id: _Optional[str] = ..., query: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class PublicInsertArchivalRequest(_message.Message):
    __slots__ = ("agent_id", "passages", "dedup")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    passages: _containers.RepeatedCompositeFieldContainer[_memory_pb2.PassageInput]
    dedup: str
    def __init__(self, agent_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[_memory_pb2.PassageInput, _Mapping]]] = ..., dedup: _Optional[str] = ...) -> None: ...

class PublicDeleteArchivalRequest(_message.Message):
    __slots__ = ("agent_id", "passage_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    passage_id: str
    def __init__(self, agent_id: _Optional[str] = ..., passage_id: _Optional[str] = ...) -> None: ...

class PublicDocumentHeader(_message.Message):
    __slots__ = ("agent_id", "filename", "content_type", "tags")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    filename: str
    content_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class PublicDocumentChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: PublicDocumentHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[PublicDocumentHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PublicCreateCheckpointRequest(_message.Message):
    __slots__ = ("agent_id", "name")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PublicRestoreCheckpointRequest(_message.Message):
    __slots__ = ("agent_id", "checkpoint_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    checkpoint_id: str
    def __init__(self, agent_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class PublicListTemplatesRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class PublicTemplateRef(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PublicPutTemplateRequest(_message.Message):
    __slots__ = ("template", "create_only")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    template: _common_pb2.Template
    create_only: bool
    def __init__(self, template: _Optional[_Union[_common_pb2.Template, _Mapping]] = ..., create_only: _Optional[bool] = ...) -> None: ...

class PublicPopMessagesRequest(_message.Message):
    __slots__ = ("agent_id", "count")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    count: int
    def __init__(self, agent_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class PublicRewriteMessageRequest(_message.Message):
    __slots__ = ("agent_id", "message_id", "text")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    message_id: str
    text: str
    def __init__(self, agent_id: _Optional[str] = ..., message_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ToolResultRequest(_message.Message):
    __slots__ = ("agent_id", "call_id", "result", "error", "is_error")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    call_id: str
    result: str
    error: str
    is_error: bool
    def __init__(self, agent_id: _Optional[str] = ..., call_id: _Optional[str] = ..., result: _Optional[str] = ..., error: _Optional[str] = ..., is_error: _Optional[bool] = ...) -> None: ...

class ApprovalRequest(_message.Message):
    __slots__ = ("agent_id", "call_id", "approve", "reason")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    call_id: str
    approve: bool
    reason: str
    def __init__(self, agent_id: _Optional[str] = ..., call_id: _Optional[str] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class PendingCalls(_message.Message):
    __slots__ = ("turn_id", "calls")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    calls: _containers.RepeatedCompositeFieldContainer[_common_pb2.PendingCall]
    def __init__(self, turn_id: _Optional[str] = ..., calls: _Optional[_Iterable[_Union[_common_pb2.PendingCall, _Mapping]]] = ...) -> None: ...

class PublicMcpServer(_message.Message):
    __slots__ = ("id", "name", "transport", "command", "args", "env", "url", "headers", "timeout_seconds", "max_result_chars", "created_at")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULT_CHARS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    transport: str
    command: str
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    url: str
    headers: _containers.ScalarMap[str, str]
    timeout_seconds: float
    max_result_chars: int
    created_at: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., transport: _Optional[str] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_seconds: _Optional[float] = ..., max_result_chars: _Optional[int] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListPublicMcpServers(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[PublicMcpServer]
    def __init__(self, servers: _Optional[_Iterable[_Union[PublicMcpServer, _Mapping]]] = ...) -> None: ...

class McpServerRequest(_message.Message):
    __slots__ = ("server_id",)
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    def __init__(self, server_id: _Optional[str] = ...) -> None: ...

class McpServerTools(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolSpec]
    def __init__(self, tools: _Optional[_Iterable[_Union[_common_pb2.ToolSpec, _Mapping]]] = ...) -> None: ...

class AttachMcpToolsRequest(_message.Message):
    __slots__ = ("agent_id", "server_id", "tools")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    server_id: str
    tools: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., server_id: _Optional[str] = ..., tools: _Optional[_Iterable[str]] = ...) -> None: ...

class DetachToolRequest(_message.Message):
    __slots__ = ("agent_id", "name")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PublicCreateBlockRequest(_message.Message):
    __slots__ = ("label", "value", "limit")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    label: str
    value: str
    limit: int
    def __init__(self, label: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PublicListBlocksRequest(_message.Message):
    __slots__ = ("page", "page_size")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    page: int
    page_size: int
    def __init__(self, page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class PublicBlockRef(_message.Message):
    __slots__ = ("block_id",)
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    def __init__(self, block_id: _Optional[str] = ...) -> None: ...

class PublicUpdateBlockRequest(_message.Message):
    __slots__ = ("block_id", "value", "limit")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    value: str
    limit: int
    def __init__(self, block_id: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PublicAttachBlockRequest(_message.Message):
    __slots__ = ("agent_id", "block_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    block_id: str
    def __init__(self, agent_id: _Optional[str] = ..., block_id: _Optional[str] = ...) -> None: ...

class PublicBulkDeleteArchivalRequest(_message.Message):
    __slots__ = ("agent_id", "tags", "start", "end", "source_id", "ids")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    start: str
    end: str
    source_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., source_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...
