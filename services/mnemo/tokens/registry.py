"""Model registry: context window, max output, provider and tokenizer of every known model.

`model_info(name)` answers for any name: known OpenAI models (longest-prefix match, so dated
snapshots resolve), the local models, overrides registered from provider config, and a default for
unknown models (8192 / 4096). The llm-proxy registers its configured models; another process that
counts tokens registers the same providers file with `register_file`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel

from mnemo.common.config import read_config_file

DEFAULT_CONTEXT_WINDOW = 8192
DEFAULT_MAX_OUTPUT = 4096

LOCAL_CHAT_MODEL = "smollm2-135m-instruct"
LOCAL_EMBEDDING_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What is known about one model."""

    name: str
    provider: str = "openai"
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_output_tokens: int = DEFAULT_MAX_OUTPUT
    supports_tools: bool = True
    embedding: bool = False
    embedding_dim: int = 0
    tokenizer: str = "cl100k_base"   # a tiktoken encoding, or "local:<model>" for a GGUF vocabulary
    known: bool = True


class ModelSpec(BaseModel):
    """One model served by a provider, with optional registry overrides (a providers file entry)."""

    name: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    supports_tools: bool | None = None
    embedding: bool = False
    embedding_dim: int = 0
    tokenizer: str | None = None


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


def register_spec(spec: ModelSpec, provider: str) -> None:
    """Override `spec.name` with what `spec` sets, keeping what is known of it otherwise."""
    base = model_info(spec.name)
    register(ModelInfo(
        name=spec.name, provider=provider,
        context_window=spec.context_window or base.context_window,
        max_output_tokens=spec.max_output_tokens or base.max_output_tokens,
        supports_tools=base.supports_tools if spec.supports_tools is None else spec.supports_tools,
        embedding=spec.embedding or base.embedding,
        embedding_dim=spec.embedding_dim or base.embedding_dim,
        tokenizer=spec.tokenizer or base.tokenizer, known=True))


def register_file(path: Path) -> None:
    """Register the models a providers file (MNEMO_PROVIDERS_FILE) lists, as the llm-proxy does."""
    for provider in read_config_file(path).get("providers") or []:
        for model in provider.get("models") or []:
            spec = ModelSpec(name=model) if isinstance(model, str) else ModelSpec.model_validate(model)
            register_spec(spec, provider["name"])


def _builtin(name: str) -> ModelInfo | None:
    if name in _BUILTIN:
        return _BUILTIN[name]
    base = name.split("/")[-1].lower()   # "openai/gpt-4o", "azure/GPT-4o"
    if base in _BUILTIN:
        return replace(_BUILTIN[base], name=name)
    best = max((k for k in _BUILTIN if base.startswith(k + "-")), key=len, default=None)
    return replace(_BUILTIN[best], name=name) if best else None


def model_info(model: str) -> ModelInfo:
    """The registry entry for `model` (config overrides first); unknown models get 8192 / 4096."""
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
