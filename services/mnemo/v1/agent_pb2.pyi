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
    __slots__ = ("id", "name", "model", "context_window", "preset", "limits", "blocks", "created_at", "counts", "embedding_model", "embedding_dim")
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
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., preset: _Optional[str] = ..., limits: _Optional[_Union[_common_pb2.AgentLimits, _Mapping]] = ..., blocks: _Optional[_Iterable[_Union[_common_pb2.MemoryBlock, _Mapping]]] = ..., created_at: _Optional[str] = ..., counts: _Optional[_Union[_memory_pb2.MemoryCounts, _Mapping]] = ..., embedding_model: _Optional[str] = ..., embedding_dim: _Optional[int] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("agent_id", "message", "idempotency_key", "role", "max_steps")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    message: str
    idempotency_key: str
    role: str
    max_steps: int
    def __init__(self, agent_id: _Optional[str] = ..., message: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., role: _Optional[str] = ..., max_steps: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("agent_id", "passages")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    passages: _containers.RepeatedCompositeFieldContainer[_memory_pb2.PassageInput]
    def __init__(self, agent_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[_memory_pb2.PassageInput, _Mapping]]] = ...) -> None: ...

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
