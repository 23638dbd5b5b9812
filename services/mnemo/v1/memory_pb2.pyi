from google.protobuf import empty_pb2 as _empty_pb2
from mnemo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateAgentRequest(_message.Message):
    __slots__ = ("tenant_id", "config", "persona", "persona_name", "human", "human_name", "blocks")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    PERSONA_NAME_FIELD_NUMBER: _ClassVar[int]
    HUMAN_FIELD_NUMBER: _ClassVar[int]
    HUMAN_NAME_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    config: _common_pb2.AgentConfig
    persona: str
    persona_name: str
    human: str
    human_name: str
    blocks: _containers.RepeatedCompositeFieldContainer[_common_pb2.MemoryBlock]
    def __init__(self, tenant_id: _Optional[str] = ..., config: _Optional[_Union[_common_pb2.AgentConfig, _Mapping]] = ..., persona: _Optional[str] = ..., persona_name: _Optional[str] = ..., human: _Optional[str] = ..., human_name: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[_common_pb2.MemoryBlock, _Mapping]]] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("tenant_id", "page", "page_size")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page: int
    page_size: int
    def __init__(self, tenant_id: _Optional[str] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "total", "page", "page_size")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_common_pb2.AgentConfig]
    total: int
    page: int
    page_size: int
    def __init__(self, agents: _Optional[_Iterable[_Union[_common_pb2.AgentConfig, _Mapping]]] = ..., total: _Optional[int] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class UpdateAgentRequest(_message.Message):
    __slots__ = ("ref", "config", "update_mask")
    REF_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    config: _common_pb2.AgentConfig
    update_mask: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., config: _Optional[_Union[_common_pb2.AgentConfig, _Mapping]] = ..., update_mask: _Optional[_Iterable[str]] = ...) -> None: ...

class CommitStepRequest(_message.Message):
    __slots__ = ("ref", "expected_revision", "step_id", "messages", "blocks", "summary_changed", "summary", "evict_message_ids", "turn", "memory_warning_sent", "events", "archival_delta", "consolidation")
    REF_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_CHANGED_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EVICT_MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    MEMORY_WARNING_SENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVAL_DELTA_FIELD_NUMBER: _ClassVar[int]
    CONSOLIDATION_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    expected_revision: int
    step_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    blocks: _containers.RepeatedCompositeFieldContainer[_common_pb2.MemoryBlock]
    summary_changed: bool
    summary: str
    evict_message_ids: _containers.RepeatedScalarFieldContainer[str]
    turn: _common_pb2.TurnProgress
    memory_warning_sent: bool
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    archival_delta: int
    consolidation: _common_pb2.ConsolidationStatus
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., expected_revision: _Optional[int] = ..., step_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ..., blocks: _Optional[_Iterable[_Union[_common_pb2.MemoryBlock, _Mapping]]] = ..., summary_changed: _Optional[bool] = ..., summary: _Optional[str] = ..., evict_message_ids: _Optional[_Iterable[str]] = ..., turn: _Optional[_Union[_common_pb2.TurnProgress, _Mapping]] = ..., memory_warning_sent: _Optional[bool] = ..., events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., archival_delta: _Optional[int] = ..., consolidation: _Optional[_Union[_common_pb2.ConsolidationStatus, _Mapping]] = ...) -> None: ...

class MessageBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    def __init__(self, messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ...) -> None: ...

class CommitStepResponse(_message.Message):
    __slots__ = ("revision", "duplicate")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    duplicate: bool
    def __init__(self, revision: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class CoreMemory(_message.Message):
    __slots__ = ("blocks", "summary", "counts", "last_memory_edit_at")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    LAST_MEMORY_EDIT_AT_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[_common_pb2.MemoryBlock]
    summary: str
    counts: MemoryCounts
    last_memory_edit_at: str
    def __init__(self, blocks: _Optional[_Iterable[_Union[_common_pb2.MemoryBlock, _Mapping]]] = ..., summary: _Optional[str] = ..., counts: _Optional[_Union[MemoryCounts, _Mapping]] = ..., last_memory_edit_at: _Optional[str] = ...) -> None: ...

class UpdateBlockRequest(_message.Message):
    __slots__ = ("ref", "label", "op", "value", "old", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    label: str
    op: str
    value: str
    old: str
    limit: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., label: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[str] = ..., old: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class PopMessagesRequest(_message.Message):
    __slots__ = ("ref", "count")
    REF_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    count: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class PopMessagesResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    def __init__(self, removed: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ...) -> None: ...

class RewriteMessageRequest(_message.Message):
    __slots__ = ("ref", "message_id", "text")
    REF_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    message_id: str
    text: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., message_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SearchRecallRequest(_message.Message):
    __slots__ = ("ref", "query", "start", "end", "role", "page", "page_size")
    REF_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    query: str
    start: str
    end: str
    role: str
    page: int
    page_size: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., query: _Optional[str] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., role: _Optional[str] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class RecallHit(_message.Message):
    __slots__ = ("message", "score")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    message: _common_pb2.Message
    score: float
    def __init__(self, message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchRecallResponse(_message.Message):
    __slots__ = ("hits", "total", "page", "page_size")
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[RecallHit]
    total: int
    page: int
    page_size: int
    def __init__(self, hits: _Optional[_Iterable[_Union[RecallHit, _Mapping]]] = ..., total: _Optional[int] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ImportRecallRequest(_message.Message):
    __slots__ = ("ref", "messages")
    REF_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    messages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Message]
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_common_pb2.Message, _Mapping]]] = ...) -> None: ...

class ImportRecallResponse(_message.Message):
    __slots__ = ("imported",)
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    imported: int
    def __init__(self, imported: _Optional[int] = ...) -> None: ...

class PassageInput(_message.Message):
    __slots__ = ("text", "tags", "id", "source_id", "position", "metadata", "expires_at", "ttl_seconds")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    id: str
    source_id: str
    position: int
    metadata: _containers.ScalarMap[str, str]
    expires_at: str
    ttl_seconds: int
    def __init__(self, text: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ..., source_id: _Optional[str] = ..., position: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., expires_at: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class InsertArchivalRequest(_message.Message):
    __slots__ = ("ref", "passages", "dedup")
    REF_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    passages: _containers.RepeatedCompositeFieldContainer[PassageInput]
    dedup: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., passages: _Optional[_Iterable[_Union[PassageInput, _Mapping]]] = ..., dedup: _Optional[str] = ...) -> None: ...

class InsertArchivalResponse(_message.Message):
    __slots__ = ("ids", "duplicate", "inserted", "deduplicated", "expiring")
    IDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    duplicate: _containers.RepeatedScalarFieldContainer[bool]
    inserted: int
    deduplicated: int
    expiring: int
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., duplicate: _Optional[_Iterable[bool]] = ..., inserted: _Optional[int] = ..., deduplicated: _Optional[int] = ..., expiring: _Optional[int] = ...) -> None: ...

class SearchArchivalRequest(_message.Message):
    __slots__ = ("ref", "query", "tags", "page", "page_size")
    REF_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    query: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    page: int
    page_size: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., query: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ArchivalHit(_message.Message):
    __slots__ = ("passage", "score")
    PASSAGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    passage: _common_pb2.Passage
    score: float
    def __init__(self, passage: _Optional[_Union[_common_pb2.Passage, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchArchivalResponse(_message.Message):
    __slots__ = ("hits", "total", "page", "page_size")
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[ArchivalHit]
    total: int
    page: int
    page_size: int
    def __init__(self, hits: _Optional[_Iterable[_Union[ArchivalHit, _Mapping]]] = ..., total: _Optional[int] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class DeleteArchivalRequest(_message.Message):
    __slots__ = ("ref", "passage_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    passage_id: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., passage_id: _Optional[str] = ...) -> None: ...

class MemoryCounts(_message.Message):
    __slots__ = ("recall", "archival", "queue")
    RECALL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVAL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    recall: int
    archival: int
    queue: int
    def __init__(self, recall: _Optional[int] = ..., archival: _Optional[int] = ..., queue: _Optional[int] = ...) -> None: ...

class DocumentHeader(_message.Message):
    __slots__ = ("ref", "filename", "content_type", "source_id", "chunk_chars", "overlap_chars", "tags")
    REF_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CHARS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_CHARS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    filename: str
    content_type: str
    source_id: str
    chunk_chars: int
    overlap_chars: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ..., source_id: _Optional[str] = ..., chunk_chars: _Optional[int] = ..., overlap_chars: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class DocumentChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: DocumentHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[DocumentHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class IngestProgress(_message.Message):
    __slots__ = ("source_id", "bytes_read", "passages", "done")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    bytes_read: int
    passages: int
    done: bool
    def __init__(self, source_id: _Optional[str] = ..., bytes_read: _Optional[int] = ..., passages: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class CreateCheckpointRequest(_message.Message):
    __slots__ = ("ref", "name")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    name: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[_common_pb2.Checkpoint]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[_common_pb2.Checkpoint, _Mapping]]] = ...) -> None: ...

class RestoreCheckpointRequest(_message.Message):
    __slots__ = ("ref", "checkpoint_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    checkpoint_id: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class DataChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ImportChunk(_message.Message):
    __slots__ = ("tenant_id", "data")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    data: bytes
    def __init__(self, tenant_id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListTemplatesRequest(_message.Message):
    __slots__ = ("tenant_id", "kind")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    kind: str
    def __init__(self, tenant_id: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[_common_pb2.Template]
    def __init__(self, templates: _Optional[_Iterable[_Union[_common_pb2.Template, _Mapping]]] = ...) -> None: ...

class TemplateRef(_message.Message):
    __slots__ = ("tenant_id", "kind", "name")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    kind: str
    name: str
    def __init__(self, tenant_id: _Optional[str] = ..., kind: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PutTemplateRequest(_message.Message):
    __slots__ = ("tenant_id", "template", "create_only")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    template: _common_pb2.Template
    create_only: bool
    def __init__(self, tenant_id: _Optional[str] = ..., template: _Optional[_Union[_common_pb2.Template, _Mapping]] = ..., create_only: _Optional[bool] = ...) -> None: ...

class EditAgentToolsRequest(_message.Message):
    __slots__ = ("ref", "put", "remove", "remove_kind")
    REF_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_KIND_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    put: _containers.RepeatedCompositeFieldContainer[_common_pb2.ToolSpec]
    remove: _containers.RepeatedScalarFieldContainer[str]
    remove_kind: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., put: _Optional[_Iterable[_Union[_common_pb2.ToolSpec, _Mapping]]] = ..., remove: _Optional[_Iterable[str]] = ..., remove_kind: _Optional[str] = ...) -> None: ...

class McpServer(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "transport", "command", "args", "env", "url", "headers", "timeout_seconds", "max_result_chars", "created_at")
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
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
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
    tenant_id: str
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
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., transport: _Optional[str] = ..., command: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_seconds: _Optional[float] = ..., max_result_chars: _Optional[int] = ..., created_at: _Optional[str] = ...) -> None: ...

class McpServerRef(_message.Message):
    __slots__ = ("tenant_id", "server_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    server_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., server_id: _Optional[str] = ...) -> None: ...

class ListMcpServersRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class ListMcpServersResponse(_message.Message):
    __slots__ = ("servers",)
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    servers: _containers.RepeatedCompositeFieldContainer[McpServer]
    def __init__(self, servers: _Optional[_Iterable[_Union[McpServer, _Mapping]]] = ...) -> None: ...

class SharedBlockAgent(_message.Message):
    __slots__ = ("agent_id", "name", "attached_at")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_AT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    attached_at: str
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., attached_at: _Optional[str] = ...) -> None: ...

class SharedBlock(_message.Message):
    __slots__ = ("id", "tenant_id", "label", "value", "limit", "created_at", "updated_at", "agents", "recent_edits", "revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    RECENT_EDITS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    label: str
    value: str
    limit: int
    created_at: str
    updated_at: str
    agents: _containers.RepeatedCompositeFieldContainer[SharedBlockAgent]
    recent_edits: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., label: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., agents: _Optional[_Iterable[_Union[SharedBlockAgent, _Mapping]]] = ..., recent_edits: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class SharedBlockRef(_message.Message):
    __slots__ = ("tenant_id", "block_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    block_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., block_id: _Optional[str] = ...) -> None: ...

class CreateSharedBlockRequest(_message.Message):
    __slots__ = ("tenant_id", "label", "value", "limit")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    label: str
    value: str
    limit: int
    def __init__(self, tenant_id: _Optional[str] = ..., label: _Optional[str] = ..., value: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSharedBlocksRequest(_message.Message):
    __slots__ = ("tenant_id", "page", "page_size")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page: int
    page_size: int
    def __init__(self, tenant_id: _Optional[str] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListSharedBlocksResponse(_message.Message):
    __slots__ = ("blocks", "total", "page", "page_size")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[SharedBlock]
    total: int
    page: int
    page_size: int
    def __init__(self, blocks: _Optional[_Iterable[_Union[SharedBlock, _Mapping]]] = ..., total: _Optional[int] = ..., page: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class UpdateSharedBlockRequest(_message.Message):
    __slots__ = ("ref", "op", "value", "old", "limit", "edit_id", "agent_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EDIT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ref: SharedBlockRef
    op: str
    value: str
    old: str
    limit: int
    edit_id: str
    agent_id: str
    def __init__(self, ref: _Optional[_Union[SharedBlockRef, _Mapping]] = ..., op: _Optional[str] = ..., value: _Optional[str] = ..., old: _Optional[str] = ..., limit: _Optional[int] = ..., edit_id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ListSharedBlockAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[SharedBlockAgent]
    def __init__(self, agents: _Optional[_Iterable[_Union[SharedBlockAgent, _Mapping]]] = ...) -> None: ...

class AttachSharedBlockRequest(_message.Message):
    __slots__ = ("ref", "block_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    block_id: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., block_id: _Optional[str] = ...) -> None: ...

class AttachSharedBlockResponse(_message.Message):
    __slots__ = ("block", "replaced", "checkpoint_id")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    block: SharedBlock
    replaced: bool
    checkpoint_id: str
    def __init__(self, block: _Optional[_Union[SharedBlock, _Mapping]] = ..., replaced: _Optional[bool] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class BulkDeleteArchivalRequest(_message.Message):
    __slots__ = ("ref", "tags", "start", "end", "source_id", "ids")
    REF_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    tags: _containers.RepeatedScalarFieldContainer[str]
    start: str
    end: str
    source_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., start: _Optional[str] = ..., end: _Optional[str] = ..., source_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BulkDeleteArchivalResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class FindArchivalDuplicatesRequest(_message.Message):
    __slots__ = ("ref", "min_similarity", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AgentRef
    min_similarity: float
    limit: int
    def __init__(self, ref: _Optional[_Union[_common_pb2.AgentRef, _Mapping]] = ..., min_similarity: _Optional[float] = ..., limit: _Optional[int] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("passages", "similarity")
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    passages: _containers.RepeatedCompositeFieldContainer[_common_pb2.Passage]
    similarity: float
    def __init__(self, passages: _Optional[_Iterable[_Union[_common_pb2.Passage, _Mapping]]] = ..., similarity: _Optional[float] = ...) -> None: ...

class FindArchivalDuplicatesResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ...) -> None: ...
