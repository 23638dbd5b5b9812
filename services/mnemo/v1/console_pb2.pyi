from mnemo.v1 import llm_pb2 as _llm_pb2
from mnemo.v1 import steps_pb2 as _steps_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContextSection(_message.Message):
    __slots__ = ("name", "label", "tokens")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    name: str
    label: str
    tokens: int
    def __init__(self, name: _Optional[str] = ..., label: _Optional[str] = ..., tokens: _Optional[int] = ...) -> None: ...

class ContextWindow(_message.Message):
    __slots__ = ("agent_id", "available", "turn_id", "step", "created_at", "model", "context_window", "prompt_tokens", "total_tokens", "sections", "warning_tokens", "compaction_tokens", "warning_fraction", "compaction_fraction")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    WARNING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FRACTION_FIELD_NUMBER: _ClassVar[int]
    COMPACTION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    available: bool
    turn_id: str
    step: int
    created_at: str
    model: str
    context_window: int
    prompt_tokens: int
    total_tokens: int
    sections: _containers.RepeatedCompositeFieldContainer[ContextSection]
    warning_tokens: int
    compaction_tokens: int
    warning_fraction: float
    compaction_fraction: float
    def __init__(self, agent_id: _Optional[str] = ..., available: _Optional[bool] = ..., turn_id: _Optional[str] = ..., step: _Optional[int] = ..., created_at: _Optional[str] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., sections: _Optional[_Iterable[_Union[ContextSection, _Mapping]]] = ..., warning_tokens: _Optional[int] = ..., compaction_tokens: _Optional[int] = ..., warning_fraction: _Optional[float] = ..., compaction_fraction: _Optional[float] = ...) -> None: ...

class TurnStep(_message.Message):
    __slots__ = ("step", "created_at", "model", "prompt_tokens", "completion_tokens", "total_tokens", "context_tokens", "timing", "trace_url", "seq")
    STEP_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    TRACE_URL_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    step: int
    created_at: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    context_tokens: int
    timing: _steps_pb2.StepTiming
    trace_url: str
    seq: int
    def __init__(self, step: _Optional[int] = ..., created_at: _Optional[str] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., context_tokens: _Optional[int] = ..., timing: _Optional[_Union[_steps_pb2.StepTiming, _Mapping]] = ..., trace_url: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class TurnTimeline(_message.Message):
    __slots__ = ("turn_id", "started_at", "ended_at", "stop_reason", "completed", "steps", "first_seq", "last_seq", "error")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    started_at: str
    ended_at: str
    stop_reason: str
    completed: bool
    steps: _containers.RepeatedCompositeFieldContainer[TurnStep]
    first_seq: int
    last_seq: int
    error: str
    def __init__(self, turn_id: _Optional[str] = ..., started_at: _Optional[str] = ..., ended_at: _Optional[str] = ..., stop_reason: _Optional[str] = ..., completed: _Optional[bool] = ..., steps: _Optional[_Iterable[_Union[TurnStep, _Mapping]]] = ..., first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ListTurnsRequest(_message.Message):
    __slots__ = ("agent_id", "limit")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    limit: int
    def __init__(self, agent_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTurnsResponse(_message.Message):
    __slots__ = ("turns",)
    TURNS_FIELD_NUMBER: _ClassVar[int]
    turns: _containers.RepeatedCompositeFieldContainer[TurnTimeline]
    def __init__(self, turns: _Optional[_Iterable[_Union[TurnTimeline, _Mapping]]] = ...) -> None: ...

class GetTurnRequest(_message.Message):
    __slots__ = ("agent_id", "turn_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    turn_id: str
    def __init__(self, agent_id: _Optional[str] = ..., turn_id: _Optional[str] = ...) -> None: ...

class AgentUsageRequest(_message.Message):
    __slots__ = ("agent_id", "since", "bucket_seconds")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    since: str
    bucket_seconds: int
    def __init__(self, agent_id: _Optional[str] = ..., since: _Optional[str] = ..., bucket_seconds: _Optional[int] = ...) -> None: ...

class UsageBucket(_message.Message):
    __slots__ = ("start", "prompt_tokens", "completion_tokens", "calls")
    START_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    start: str
    prompt_tokens: int
    completion_tokens: int
    calls: int
    def __init__(self, start: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., calls: _Optional[int] = ...) -> None: ...

class AgentUsage(_message.Message):
    __slots__ = ("agent_id", "since", "bucket_seconds", "buckets", "totals")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    since: str
    bucket_seconds: int
    buckets: _containers.RepeatedCompositeFieldContainer[UsageBucket]
    totals: _containers.RepeatedCompositeFieldContainer[_llm_pb2.UsageTotal]
    def __init__(self, agent_id: _Optional[str] = ..., since: _Optional[str] = ..., bucket_seconds: _Optional[int] = ..., buckets: _Optional[_Iterable[_Union[UsageBucket, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[_llm_pb2.UsageTotal, _Mapping]]] = ...) -> None: ...
