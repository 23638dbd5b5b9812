"""Token counts of chat requests in OpenAI format, for any model, offline.

Chat requests follow OpenAI's documented formula (3 tokens per message, 1 per name, 3 to prime the
reply) and its tool-schema accounting. This runs on the orchestrator's hot path, so the token count
of each distinct string, message and tool set is memoized.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from mnemo.tokens.encodings import BUNDLED, encoding, local_tokenizer
from mnemo.tokens.registry import model_info

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def tokenizer_name(model: str) -> str:
    """The tokenizer used for `model`: a tiktoken encoding name or "local:<model>"."""
    tok = model_info(model).tokenizer
    if tok.startswith("local:") or tok in BUNDLED:
        return tok
    return "cl100k_base"


@lru_cache(maxsize=200_000)
def _count(tok: str, text: str) -> int:
    if not text:
        return 0
    if tok.startswith("local:"):
        return local_tokenizer(tok[len("local:"):])(text)
    return len(encoding(tok).encode(text, disallowed_special=()))


def prepare(model: str) -> None:
    """Load `model`'s tokenizer now (o200k_base takes ~0.5 s of CPU to build), so that the first
    request counted with it does not wait for it."""
    tok = tokenizer_name(model)
    if tok.startswith("local:"):
        local_tokenizer(tok[len("local:"):])
    else:
        encoding(tok)  # not through the counts' cache, which may hold this text's count already


def count_text(model: str, text: str) -> int:
    """Tokens of `text` in `model`'s tokenizer."""
    return _count(tokenizer_name(model), text)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):   # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _message_key(m: dict[str, Any]) -> tuple[Any, ...]:
    """What a message's token count depends on: role, content text, name, tool / function calls."""
    calls = m.get("tool_calls")
    call_key: tuple[tuple[str, str], ...] = ()
    if calls:
        fns = [c.get("function") or c for c in calls]
        call_key = tuple((fn.get("name") or "", fn.get("arguments") or "") for fn in fns)
    fc = m.get("function_call")
    fc_key = (fc.get("name") or "", fc.get("arguments") or "") if fc else None
    return (m.get("role") or "", _content_text(m.get("content")), m.get("name") or "", call_key, fc_key)


@lru_cache(maxsize=50_000)
def _message_tokens_cached(tok: str, key: tuple[Any, ...]) -> int:
    # Long queues repeat every earlier message on each call: one lookup per message instead of
    # one tiktoken lookup per field keeps a call's cost proportional to its new messages.
    role, content, name, calls, fc = key
    n = TOKENS_PER_MESSAGE + _count(tok, role) + _count(tok, content)
    if name:
        n += TOKENS_PER_NAME + _count(tok, name)
    for fn_name, args in calls:
        n += TOKENS_PER_MESSAGE + _count(tok, fn_name) + _count(tok, args)
    if fc is not None:
        n += TOKENS_PER_MESSAGE + _count(tok, fc[0]) + _count(tok, fc[1])
    return n


def _message_tokens(tok: str, m: dict[str, Any]) -> int:
    return _message_tokens_cached(tok, _message_key(m))


# OpenAI cookbook ("How to count tokens ... with tools"): per-function, per-property and enum costs.
_FUNC_INIT, _PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 7, 3, 3, -3, 3, 12


def _strip_dot(s: str) -> str:
    return s[:-1] if s.endswith(".") else s


def _tools_tokens(tok: str, tools: list[dict[str, Any]]) -> int:
    if not tools:
        return 0
    if tok.startswith("local:"):
        # Local models get the schemas as text in the system prompt (providers/local_provider.py).
        return 32 + _count(tok, json.dumps(tools, separators=(",", ":")))
    func_init = 10 if tok == "cl100k_base" else _FUNC_INIT
    n = 0
    for t in tools:
        fn = t.get("function", t)
        n += func_init + _count(tok, f"{fn.get('name', '')}:{_strip_dot(fn.get('description') or '')}")
        props = (fn.get("parameters") or {}).get("properties") or {}
        if props:
            n += _PROP_INIT
            for key, prop in props.items():
                prop = prop if isinstance(prop, dict) else {}
                n += _PROP_KEY
                if "enum" in prop:
                    n += _ENUM_INIT
                    for item in prop["enum"]:
                        n += _ENUM_ITEM + _count(tok, str(item))
                ptype = prop.get("type", "")
                ptype = "|".join(ptype) if isinstance(ptype, list) else str(ptype)
                n += _count(tok, f"{key}:{ptype}:{_strip_dot(prop.get('description') or '')}")
                # Nested schemas (objects, arrays of objects...) are outside the documented formula:
                # count their JSON so a request is never under-estimated.
                extra = {k: v for k, v in prop.items() if k not in ("type", "description", "enum")}
                if extra:
                    n += _count(tok, json.dumps(extra, separators=(",", ":"), sort_keys=True))
    return n + _FUNC_END


def _tools_key(tools: list[dict[str, Any]]) -> str:
    return json.dumps(tools, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=4096)
def _tools_cached(tok: str, key: str) -> int:
    return _tools_tokens(tok, json.loads(key))


def count_tools(model: str, tools: list[dict[str, Any]] | None) -> int:
    """Tokens the tool (function) schemas add to a request."""
    if not tools:
        return 0
    return _tools_cached(tokenizer_name(model), _tools_key(tools))


def count_message(model: str, message: dict[str, Any]) -> int:
    """Tokens one message adds to a request (its per-message overhead included)."""
    return _message_tokens(tokenizer_name(model), message)


def count_chat_tokens(model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """Prompt tokens of a chat request in OpenAI format: messages, reply priming and tool schemas."""
    tok = tokenizer_name(model)
    n = sum(_message_tokens(tok, m) for m in messages)
    if messages:
        n += REPLY_PRIMING
    return n + (count_tools(model, tools) if tools else 0)
