"""Python client of the Mnemo REST API: `Mnemo` (sync) and `AsyncMnemo` (async).

    from mnemo.client import Mnemo
    client = Mnemo()                      # http://127.0.0.1:8283, key from $MNEMO_HOME/api_key
    agent = client.agents.create(name="sam")
    print(client.agents.send_message(agent.id, "hi").reply)
    for event in client.agents.stream_message(agent.id, "tell me more"):
        print(event.type, event.text)
"""

from mnemo.client.client import AsyncMnemo, Mnemo
from mnemo.client.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    MnemoError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
    ValidationError,
)
from mnemo.client.models import (
    Agent,
    ArchivalHit,
    ArchivalPage,
    AttachResult,
    BlockAgent,
    Checkpoint,
    CoreMemory,
    Event,
    IngestResult,
    InsertResult,
    McpServer,
    MemoryBlock,
    MemoryCounts,
    Message,
    Passage,
    PendingCall,
    PendingCalls,
    RecallHit,
    RecallPage,
    SharedBlock,
    Template,
    ToolSpec,
    TurnResult,
)

__all__ = [
    "APIConnectionError",
    "Agent",
    "ArchivalHit",
    "ArchivalPage",
    "AsyncMnemo",
    "AttachResult",
    "AuthenticationError",
    "BadRequestError",
    "BlockAgent",
    "Checkpoint",
    "ConflictError",
    "CoreMemory",
    "Event",
    "IngestResult",
    "InsertResult",
    "McpServer",
    "MemoryBlock",
    "MemoryCounts",
    "Message",
    "Mnemo",
    "MnemoError",
    "NotFoundError",
    "Passage",
    "PayloadTooLargeError",
    "PendingCall",
    "PendingCalls",
    "PermissionDeniedError",
    "RateLimitError",
    "RecallHit",
    "RecallPage",
    "ServerError",
    "SharedBlock",
    "StreamError",
    "Template",
    "ToolSpec",
    "TurnResult",
    "ValidationError",
]
