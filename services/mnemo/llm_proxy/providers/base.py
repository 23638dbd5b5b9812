"""What every provider takes and returns (OpenAI-format dicts in, plain results out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ChatCall:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)   # {"type":"function","function":{...}}
    tool_choice: str = "auto"
    max_tokens: int | None = None
    temperature: float | None = None
    prompt_tokens: int = 0   # the caller's count of the prompt (0 = unknown: the proxy counts)
    # Each message already encoded as compact JSON, in order (empty = not at hand): a provider sending
    # the messages unchanged joins these instead of encoding the whole queue again.
    messages_json: list[bytes] = field(default_factory=list)

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


@dataclass
class ChatResult:
    content: str
    raw_calls: list[tuple[str, str, str]]   # (id, name, arguments text) as the model produced them
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model: str


class Provider(Protocol):
    name: str

    async def chat(self, call: ChatCall, timeout: float) -> ChatResult: ...

    def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[str | ChatResult]:
        """Text deltas, then one final ChatResult."""
        ...

    async def close(self) -> None: ...
