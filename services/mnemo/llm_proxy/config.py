"""Provider configuration: in code (`ProxyConfig(...)`), from a file (MNEMO_PROVIDERS_FILE: YAML,
JSON or TOML), or from the environment (`OPENAI_API_KEY` / `OPENAI_BASE_URL`, read as the SDK reads
them). Secrets are `SecretStr`: never printed or logged.

A file looks like:

    default_model: gpt-4o-mini
    tenant_tokens_per_minute: 200000
    providers:
      - name: openai
        api_key_env: OPENAI_API_KEY
        models: [gpt-4o-mini, {name: gpt-4o, context_window: 128000}]
      - name: vllm
        base_url: http://127.0.0.1:8000/v1
        api_key: none
        models: [{name: llama-3.1-8b, context_window: 32768, max_output_tokens: 4096}]
        timeout: 120
        max_concurrency: 8
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from mnemo.common.config import Settings, read_config_file
from mnemo.tokens import registry
from mnemo.tokens.registry import LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL, ModelSpec


class ProviderConfig(BaseModel):
    """One provider. `kind="openai"`: any OpenAI-compatible endpoint; `kind="local"`: a GGUF in-process."""

    name: str
    kind: Literal["openai", "local"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    models: list[ModelSpec] = Field(default_factory=list)
    catch_all: bool | None = None        # serve models no provider lists (default: openai with no models)
    timeout: float = 60.0                # seconds per attempt
    max_retries: int = 2
    max_concurrency: int = 16
    legacy_functions: bool = False       # send `functions` / `function_call` instead of `tools`
    constrained_tools: bool = False      # tool calls through JSON-schema constrained output
    stream: bool = True
    breaker_failures: int = 5            # consecutive failures that open the circuit
    breaker_reset: float = 30.0          # seconds the circuit stays open
    model_path: str | None = None        # local: the GGUF file
    n_ctx: int = 8192                    # local: context size
    n_threads: int | None = None         # local: inference threads

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    def resolved_api_key(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env, "")
        return ""

    @property
    def is_catch_all(self) -> bool:
        if self.catch_all is not None:
            return self.catch_all
        return self.kind == "openai" and not self.models


class ProxyConfig(BaseModel):
    """Everything the llm-proxy is configured with."""

    providers: list[ProviderConfig] = Field(default_factory=list)
    default_model: str | None = None
    default_embedding_model: str = LOCAL_EMBEDDING_MODEL
    local_embedding_precision: Literal["int8", "shipped"] = "int8"
    tenant_tokens_per_minute: int = 0     # 0 = unlimited
    tenant_limits: dict[str, int] = Field(default_factory=dict)   # per-tenant overrides
    retry_base_delay: float = 0.25
    retry_max_delay: float = 8.0
    max_retry_after: float = 30.0         # a longer Retry-After is returned to the caller, not waited
    local_concurrency: int = 1

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def route(self, model: str) -> ProviderConfig | None:
        """The provider serving `model`: one that lists it, else the catch-all openai provider."""
        for p in self.providers:
            if any(m.name == model for m in p.models):
                return p
        return next((p for p in self.providers if p.is_catch_all), None)

    def resolved_default_model(self) -> str:
        if self.default_model:
            return self.default_model
        for p in self.providers:
            if p.kind == "openai" and p.models:
                return p.models[0].name
        if any(p.kind == "openai" and p.is_catch_all for p in self.providers):
            return "gpt-4o-mini"
        return LOCAL_CHAT_MODEL

    def register_models(self) -> None:
        """Publish every configured model's overrides to the registry."""
        for p in self.providers:
            for m in p.models:
                registry.register_spec(m, p.name)


def local_provider(model_path: str | None = None, concurrency: int = 1) -> ProviderConfig:
    """The in-process llama.cpp provider serving smollm2-135m-instruct (or the given GGUF)."""
    return ProviderConfig(name="local", kind="local", models=[ModelSpec(name=LOCAL_CHAT_MODEL)],
                          model_path=model_path, max_concurrency=concurrency, timeout=300.0,
                          max_retries=0, stream=False, constrained_tools=True)


def load_file(path: Path) -> ProxyConfig:
    """Read a providers file (YAML, JSON or TOML, by extension; YAML otherwise)."""
    return ProxyConfig.model_validate(read_config_file(path))


def from_settings(settings: Settings, environ: dict[str, str] | None = None) -> ProxyConfig:
    """The configuration a deployed llm-proxy runs with: file, then environment, then local model."""
    env = os.environ if environ is None else environ
    if settings.providers_file:
        config = load_file(settings.providers_file)
    else:
        config = ProxyConfig()
        if env.get("OPENAI_API_KEY"):
            config.providers.append(ProviderConfig(
                name="openai", base_url=env.get("OPENAI_BASE_URL") or None,
                api_key=SecretStr(env["OPENAI_API_KEY"]), catch_all=True))
            config.default_model = settings.default_model
        elif "default_model" in settings.model_fields_set:
            config.default_model = settings.default_model
    if not any(p.kind == "local" for p in config.providers):
        config.providers.append(local_provider(settings.local_model_path, config.local_concurrency))
    if settings.embedding_model:
        config.default_embedding_model = settings.embedding_model
    config.local_embedding_precision = settings.local_embedding_precision
    return config
