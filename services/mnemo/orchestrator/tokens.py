"""Token counting for request budgets, with the token library the llm-proxy counts with.

`mnemo.tokens.count_chat_tokens(model, messages, tools)` is the single source of truth (OpenAI-format
message and tool dicts). Requests are counted part by part (each message, the tool schemas, each
system-prompt section) and the parts are cached, so a step only tokenizes what changed since the
previous one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from mnemo import tokens
from mnemo.common.config import Settings

CountFn = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], int]

# Slack added per section when a system message is counted section by section (BPE merges at a
# section boundary can only shift a token or two).
SECTION_SLACK = 2

_EMPTY_USER = {"role": "user", "content": ""}
_EMPTY_SYSTEM = {"role": "system", "content": ""}
_PROBE = [{"role": "user", "content": "x"}]


class TokenCounter:
    """Cached token counts of request parts for any model.

    `same_as_proxy` is True when counts come from the llm-proxy's own library (no `count` given): a
    request's count can then travel with it (ChatRequest.prompt_tokens) instead of being made again
    by the proxy.
    """

    def __init__(self, count: CountFn | None = None, cache_size: int = 50_000) -> None:
        self.same_as_proxy = count is None
        self._count: CountFn = count or tokens.count_chat_tokens
        # Content-keyed caches: (model, message JSON) and (model, text), least recently used out.
        self._message_cached = lru_cache(maxsize=cache_size)(self._message_of_json)
        self._text_cached = lru_cache(maxsize=cache_size)(self._text_raw)
        # One entry per model, or per (model, tool set): a handful.
        self._base: dict[str, int] = {}
        self._tools: dict[tuple[str, str], int] = {}

    @classmethod
    def for_settings(cls, settings: Settings) -> TokenCounter:
        """A counter that counts as the llm-proxy configured by `settings` does (its providers file's
        models, its local GGUF)."""
        tokens.configure(settings.providers_file, settings.local_model_path)
        return cls()

    def prepare(self, model: str) -> None:
        """Load `model`'s tokenizer now, so that the first step counted with it does not wait for it
        (`OrchestratorService.start` runs this off the event loop for the default model)."""
        if self.same_as_proxy:
            tokens.prepare(model)
        else:
            self.base(model)

    def _message_raw(self, model: str, message: dict[str, Any]) -> int:
        one = self._count(model, [message], [])
        two = self._count(model, [message, message], [])
        return max(0, two - one)

    def _message_of_json(self, model: str, key: str) -> int:
        return self._message_raw(model, json.loads(key))

    def _text_raw(self, model: str, text: str) -> int:
        return max(0, self._message_raw(model, {"role": "system", "content": text})
                   - self._message_raw(model, _EMPTY_SYSTEM))

    def base(self, model: str) -> int:
        """Tokens of an empty conversation with one message's priming (reply primer)."""
        hit = self._base.get(model)
        if hit is None:
            hit = self._base[model] = max(0, self._count(model, [_EMPTY_USER], [])
                                          - self._message_raw(model, _EMPTY_USER))
        return hit

    def message(self, model: str, message: dict[str, Any]) -> int:
        """Tokens one message adds to a request."""
        if self.same_as_proxy:  # the library's own per-message count (cached by content), no JSON key
            return tokens.count_message(model, message)
        return self._message_cached(model, json.dumps(message, sort_keys=True, separators=(",", ":")))

    def text(self, model: str, text: str) -> int:
        """Tokens of a piece of text inside a message (a system-prompt section)."""
        if self.same_as_proxy:  # the library's own text count (cached), not two message counts
            return tokens.count_text(model, text)
        return self._text_cached(model, text)

    def tools(self, model: str, tools: Sequence[dict[str, Any]], key: str) -> int:
        """Tokens of the tool schemas (cached under `key`)."""
        hit = self._tools.get((model, key))
        if hit is None:
            hit = self._tools[(model, key)] = max(
                0, self._count(model, _PROBE, list(tools)) - self._count(model, _PROBE, []))
        return hit

    def request(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """An uncached count of a whole request (checks and tests)."""
        return self._count(model, messages, tools)
