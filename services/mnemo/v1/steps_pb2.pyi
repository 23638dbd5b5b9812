from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContextBreakdown(_message.Message):
    __slots__ = ("system_instructions", "function_schemas", "memory_metadata", "core_memory", "summary", "message_queue", "reserved_completion", "warning_fraction", "compaction_fraction")
    SYSTEM_INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_SCHEMAS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_METADATA_FIELD_NUMBER: _ClassVar[int]
    CORE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_QUEUE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    WARNING_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    system_instructions: int
    function_schemas: int
    memory_metadata: int
    core_memory: int
    summary: int
    message_queue: int
    reserved_completion: int
    warning_fraction: float
    compaction_fraction: float
    def __init__(self, system_instructions: _Optional[int] = ..., function_schemas: _Optional[int] = ..., memory_metadata: _Optional[int] = ..., core_memory: _Optional[int] = ..., summary: _Optional[int] = ..., message_queue: _Optional[int] = ..., reserved_completion: _Optional[int] = ..., warning_fraction: _Optional[float] = ..., compaction_fraction: _Optional[float] = ...) -> None: ...

class FunctionTiming(_message.Message):
    __slots__ = ("name", "call_id", "status", "duration_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    call_id: str
    status: str
    duration_ms: float
    def __init__(self, name: _Optional[str] = ..., call_id: _Optional[str] = ..., status: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class StepTiming(_message.Message):
    __slots__ = ("model_latency_ms", "compaction_ms", "step_ms", "functions", "stop_reason", "finish_reason", "trace_id")
    MODEL_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_MS_FIELD_NUMBER: _ClassVar[int]
    STEP_MS_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    model_latency_ms: float
    compaction_ms: float
    step_ms: float
    functions: _containers.RepeatedCompositeFieldContainer[FunctionTiming]
    stop_reason: str
    finish_reason: str
    trace_id: str
    def __init__(self, model_latency_ms: _Optional[float] = ..., compaction_ms: _Optional[float] = ..., step_ms: _Optional[float] = ..., functions: _Optional[_Iterable[_Union[FunctionTiming, _Mapping]]] = ..., stop_reason: _Optional[str] = ..., finish_reason: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...
