"""Model registry: context window, max output, provider and tokenizer of every known model.

`model_info(name)` answers for any name: known OpenAI models (longest-prefix match, so dated
snapshots resolve), the local models, overrides registered from provider config, and a default for
unknown models (8192 / 4096).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

DEFAULT_CONTEXT_WINDOW = 8192
DEFAULT_MAX_OUTPUT = 4096

LOCAL_CHAT_MODEL = "smollm2-135m-instruct"
LOCAL_EMBEDDING_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the proxy knows about one model."""

    name: str
    provider: str = "openai"
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_output_tokens: int = DEFAULT_MAX_OUTPUT
    supports_tools: bool = True
    embedding: bool = False
    embedding_dim: int = 0
    tokenizer: str = "cl100k_base"   # a tiktoken encoding, or "local:<model>" for a GGUF vocabulary
    known: bool = True


def _oai(name: str, window: int, out: int, tok: str = "o200k_base") -> ModelInfo:
    return ModelInfo(name, "openai", window, out, tokenizer=tok)


def _emb(name: str, dim: int, window: int = 8191, provider: str = "openai", tok: str = "cl100k_base") -> ModelInfo:
    return ModelInfo(name, provider, window, 0, supports_tools=False, embedding=True, embedding_dim=dim,
                     tokenizer=tok)


_BUILTIN: dict[str, ModelInfo] = {m.name: m for m in [
    _oai("gpt-5", 400_000, 128_000),
    _oai("gpt-5-mini", 400_000, 128_000),
    _oai("gpt-5-nano", 400_000, 128_000),
    _oai("gpt-4.1", 1_047_576, 32_768),
    _oai("gpt-4.1-mini", 1_047_576, 32_768),
    _oai("gpt-4.1-nano", 1_047_576, 32_768),
    _oai("gpt-4o", 128_000, 16_384),
    _oai("gpt-4o-mini", 128_000, 16_384),
    _oai("chatgpt-4o-latest", 128_000, 16_384),
    _oai("o1", 200_000, 100_000),
    _oai("o1-mini", 128_000, 65_536),
    _oai("o3", 200_000, 100_000),
    _oai("o3-mini", 200_000, 100_000),
    _oai("o4-mini", 200_000, 100_000),
    _oai("gpt-4-turbo", 128_000, 4096, "cl100k_base"),
    _oai("gpt-4-32k", 32_768, 32_768, "cl100k_base"),
    _oai("gpt-4", 8192, 8192, "cl100k_base"),
    _oai("gpt-3.5-turbo", 16_385, 4096, "cl100k_base"),
    _emb("text-embedding-3-small", 1536),
    _emb("text-embedding-3-large", 3072),
    _emb("text-embedding-ada-002", 1536),
    ModelInfo(LOCAL_CHAT_MODEL, "local", 8192, 2048, supports_tools=True, tokenizer=f"local:{LOCAL_CHAT_MODEL}"),
    _emb(LOCAL_EMBEDDING_MODEL, 384, window=256, provider="local", tok="wordpiece:all-minilm-l6-v2"),
]}

_overrides: dict[str, ModelInfo] = {}
_lock = threading.Lock()


def register(info: ModelInfo) -> None:
    """Add or override a model (from provider config)."""
    with _lock:
        _overrides[info.name] = info


def unregister(name: str) -> None:
    with _lock:
        _overrides.pop(name, None)


def _builtin(name: str) -> ModelInfo | None:
    if name in _BUILTIN:
        return _BUILTIN[name]
    base = name.split("/")[-1].lower()   # "openai/gpt-4o", "azure/GPT-4o"
    if base in _BUILTIN:
        return replace(_BUILTIN[base], name=name)
    best = max((k for k in _BUILTIN if base.startswith(k + "-")), key=len, default=None)
    return replace(_BUILTIN[best], name=name) if best else None


_settings_loaded = False


def _load_settings_overrides() -> None:
    """Once per process: the overrides of MNEMO_PROVIDERS_FILE (so the orchestrator sees them too)."""
    global _settings_loaded
    _settings_loaded = True
    try:
        from mnemo.common.config import get_settings
        from mnemo.llm_proxy.config import load_file

        path = get_settings().providers_file
        if path:
            load_file(path).register_models()
    except Exception:
        pass


def model_info(model: str) -> ModelInfo:
    """The registry entry for `model` (config overrides first); unknown models get 8192 / 4096."""
    if not _settings_loaded:
        _load_settings_overrides()
    hit = _overrides.get(model)
    if hit is not None:
        return hit
    found = _builtin(model)
    if found is not None:
        return found
    return ModelInfo(model, "openai", DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT, known=False)


def known_models() -> list[ModelInfo]:
    """Every built-in model plus config overrides (overrides win)."""
    merged = dict(_BUILTIN)
    merged.update(_overrides)
    return list(merged.values())
