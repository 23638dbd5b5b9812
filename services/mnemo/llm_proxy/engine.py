"""The llm-proxy's domain core: routing a model name to its provider, the context-window check,
rate limits, retries / breaker / concurrency caps, tool-call repair, metering, spans and metrics.
Knows nothing of gRPC (server.py maps its errors to statuses)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opentelemetry.trace import Span

from mnemo import tokens
from mnemo.common import metrics, telemetry
from mnemo.llm_proxy import errors
from mnemo.llm_proxy.config import ProviderConfig, ProxyConfig
from mnemo.llm_proxy.embeddings import DIM as LOCAL_DIM
from mnemo.llm_proxy.embeddings import background_embedder, shared_embedder
from mnemo.llm_proxy.providers.base import ChatCall, ChatResult
from mnemo.llm_proxy.resilience import (
    CircuitBreaker,
    RetryPolicy,
    TenantLimiter,
    call_with_resilience,
    counts_against_provider,
)
from mnemo.llm_proxy.toolcalls import ParsedOutput, parse_output
from mnemo.llm_proxy.usage import UsageMeter, UsageRecord
from mnemo.tokens import registry

log = logging.getLogger(__name__)
TRACER = "mnemo.llm-proxy"


@dataclass
class CallMeta:
    tenant_id: str = ""
    agent_id: str = ""
    turn_id: str = ""
    purpose: str = ""


@dataclass
class ChatOutcome:
    parsed: ParsedOutput
    result: ChatResult
    provider: str
    latency_ms: float
    prompt_tokens: int = 0


@dataclass
class StreamEnd:
    outcome: ChatOutcome


@dataclass
class _Route:
    model: str
    config: ProviderConfig
    provider: Any
    breaker: CircuitBreaker
    semaphore: asyncio.Semaphore
    policy: RetryPolicy = field(default_factory=RetryPolicy)


def _make_provider(cfg: ProviderConfig, config: ProxyConfig) -> Any:
    if cfg.kind == "local":
        from mnemo.llm_proxy.providers.local_provider import LocalProvider

        if cfg.model_path:
            for m in cfg.models:
                tokens.register_local_vocab(m.name, cfg.model_path)
        return LocalProvider(cfg, concurrency=cfg.max_concurrency or config.local_concurrency)
    from mnemo.llm_proxy.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(cfg)


class LLMEngine:
    """Every model call of the proxy."""

    def __init__(self, config: ProxyConfig, meter: UsageMeter | None = None) -> None:
        self.config = config
        self.meter = meter
        config.register_models()
        self.providers = {p.name: _make_provider(p, config) for p in config.providers}
        self.breakers = {p.name: CircuitBreaker(p.name, p.breaker_failures, p.breaker_reset) for p in config.providers}
        self.semaphores = {p.name: asyncio.Semaphore(max(1, p.max_concurrency)) for p in config.providers}
        self.policies = {p.name: RetryPolicy(p.max_retries, config.retry_base_delay, config.retry_max_delay,
                                             config.max_retry_after) for p in config.providers}
        self.limiter = TenantLimiter(config.tenant_tokens_per_minute, config.tenant_limits)
        self.embedder = shared_embedder(config.local_embedding_precision)  # loads on its first call
        self.background_embedder = background_embedder(config.local_embedding_precision)
        self.default_model = config.resolved_default_model()

    async def close(self) -> None:
        for p in self.providers.values():
            await p.close()

    # ---- routing ---------------------------------------------------------------------------
    def route(self, model: str) -> _Route:
        name = model or self.default_model
        cfg = self.config.route(name)
        if cfg is None:
            served = sorted({m.name for p in self.config.providers for m in p.models})
            raise errors.InvalidRequest(f"unknown model {name!r}; configured models: {', '.join(served) or 'none'}")
        return _Route(name, cfg, self.providers[cfg.name], self.breakers[cfg.name], self.semaphores[cfg.name],
                      self.policies[cfg.name])

    # ---- checks ----------------------------------------------------------------------------
    def check_context(self, call: ChatCall) -> int:
        """Prompt tokens of `call` (the caller's count when it gave one); ContextOverflow (before
        sending) when it cannot fit the window."""
        info = registry.model_info(call.model)
        prompt = call.prompt_tokens or tokens.count_chat_tokens(call.model, call.messages, call.tools or None)
        reserve = call.max_tokens or 1
        if prompt + reserve > info.context_window:
            raise errors.ContextOverflow(
                f"context_length_exceeded: request needs {prompt} prompt + {reserve} completion tokens, "
                f"model {call.model!r} has a context window of {info.context_window}")
        return prompt

    def _reserve(self, tenant: str, amount: int) -> int:
        bucket = self.limiter.bucket(tenant)
        if bucket is None:
            return 0
        bucket.take(amount)
        return amount

    def _settle(self, tenant: str, reserved: int, used: int) -> None:
        bucket = self.limiter.bucket(tenant)
        if bucket is not None and reserved:
            bucket.adjust(used - reserved)

    # ---- chat ------------------------------------------------------------------------------
    def _chat_span(self, route: _Route, meta: CallMeta, max_tokens: int | None,
                   **extra: Any) -> AbstractContextManager[Span]:
        """The GenAI CLIENT span of one chat call."""
        system = "openai" if route.config.kind == "openai" else "llama_cpp"
        attrs: dict[str, Any] = {"mnemo.llm.provider": route.config.name, "mnemo.tenant_id": meta.tenant_id,
                                 "mnemo.agent_id": meta.agent_id, "mnemo.turn_id": meta.turn_id, **extra}
        if max_tokens:
            attrs["gen_ai.request.max_tokens"] = max_tokens
        return telemetry.llm_span("chat", route.model, provider=system, tracer=TRACER, attributes=attrs)

    def _timeout(self, route: _Route, deadline: float | None) -> float:
        timeout = route.config.timeout
        return min(timeout, deadline) if deadline else timeout

    def _finish(self, route: _Route, meta: CallMeta, result: ChatResult, started: float,
                call: ChatCall, prompt_estimate: int, span: Any, kind: str = "chat") -> ChatOutcome:
        latency = (time.perf_counter() - started) * 1000
        if not result.prompt_tokens:
            result.prompt_tokens = prompt_estimate
        parsed = (parse_output(result.content, result.raw_calls, call.tool_names if call.tools else [],
                               truncated=result.finish_reason == "length")
                  if call.tool_choice != "none" else ParsedOutput(result.content))
        if parsed.tool_calls and result.finish_reason in ("stop", "function_call", ""):
            result.finish_reason = "tool_calls"
        if parsed.repaired:
            log.info("repaired model output of %s: %s", route.model, "; ".join(parsed.repaired))
            span.set_attribute("mnemo.llm.repaired", "; ".join(parsed.repaired))
        if parsed.error:
            span.set_attribute("mnemo.llm.tool_call_error", parsed.error)
            metrics.LLM_ERRORS.add(1, {"kind": "tool_call_error", "model": route.model})
        telemetry.set_llm_usage(span, result.prompt_tokens, result.completion_tokens,
                                response_model=result.model, finish_reasons=[result.finish_reason])
        metrics.TOKENS.add(result.prompt_tokens, {"model": route.model, "kind": "input"})
        metrics.TOKENS.add(result.completion_tokens, {"model": route.model, "kind": "output"})
        metrics.LLM_LATENCY.record(latency / 1000, {"model": route.model, "operation": kind})
        if self.meter is not None:
            self.meter.record(UsageRecord(meta.tenant_id, meta.agent_id, route.model, route.config.name,
                                          meta.purpose or "other", result.prompt_tokens, result.completion_tokens,
                                          round(latency, 3), kind=kind, turn_id=meta.turn_id))
        return ChatOutcome(parsed, result, route.config.name, latency, prompt_estimate)

    def _error(self, route_model: str, exc: BaseException) -> None:
        kind = exc.kind if isinstance(exc, errors.LLMError) else type(exc).__name__
        metrics.LLM_ERRORS.add(1, {"kind": kind, "model": route_model})

    def _prepare(self, call: ChatCall) -> _Route:
        route = self.route(call.model)
        call.model = route.model
        info = registry.model_info(route.model)
        if info.embedding:
            raise errors.InvalidRequest(f"model {route.model!r} is an embedding model, not a chat model")
        if call.tool_choice not in ("", "auto", "none", "required") and call.tool_choice not in call.tool_names:
            raise errors.InvalidRequest(f"tool_choice {call.tool_choice!r} is not one of the given tools")
        call.tool_choice = call.tool_choice or "auto"
        if info.known and info.max_output_tokens and call.max_tokens and call.max_tokens > info.max_output_tokens:
            call.max_tokens = info.max_output_tokens   # the provider would refuse more
        return route

    async def chat(self, call: ChatCall, meta: CallMeta, deadline: float | None = None) -> ChatOutcome:
        """One chat completion, with every guarantee of the proxy."""
        route = self._prepare(call)
        with self._chat_span(route, meta, call.max_tokens) as span:
            try:
                prompt = self.check_context(call)
                reserved = self._reserve(meta.tenant_id, prompt + (call.max_tokens or 0))
                started = time.perf_counter()
                timeout = self._timeout(route, deadline)

                async def attempt() -> ChatResult:
                    async with route.semaphore:
                        return await route.provider.chat(call, timeout)

                try:
                    result = await call_with_resilience(attempt, route.breaker, route.policy)
                except BaseException:
                    self._settle(meta.tenant_id, reserved, 0)
                    raise
                self._settle(meta.tenant_id, reserved, result.prompt_tokens + result.completion_tokens)
                return self._finish(route, meta, result, started, call, prompt, span)
            except errors.LLMError as exc:
                self._error(route.model, exc)
                span.set_attribute("error.type", exc.kind)
                raise

    async def stream(self, call: ChatCall, meta: CallMeta,
                     deadline: float | None = None) -> AsyncIterator[str | StreamEnd]:
        """Text deltas, then a StreamEnd with the complete (repaired) outcome. Retried only before
        the first delta was sent."""
        route = self._prepare(call)
        with self._chat_span(route, meta, call.max_tokens, **{"mnemo.llm.stream": True}) as span:
            try:
                prompt = self.check_context(call)
                reserved = self._reserve(meta.tenant_id, prompt + (call.max_tokens or 0))
                started = time.perf_counter()
                timeout = self._timeout(route, deadline)
                attempt_no = 0
                result: ChatResult | None = None
                while result is None:
                    attempt_no += 1
                    sent = False
                    route.breaker.before_call()
                    try:
                        async with route.semaphore:
                            async for item in route.provider.stream(call, timeout):
                                if isinstance(item, ChatResult):
                                    result = item
                                else:
                                    sent = True
                                    yield item
                        route.breaker.success()
                    except errors.LLMError as exc:
                        if counts_against_provider(exc):
                            route.breaker.failure()
                        else:
                            route.breaker.neutral()
                        if sent or attempt_no > route.policy.max_retries or not route.policy.allows(exc):
                            self._settle(meta.tenant_id, reserved, 0)
                            raise
                        await asyncio.sleep(route.policy.backoff.delay(attempt_no, exc.retry_after))
                self._settle(meta.tenant_id, reserved, result.prompt_tokens + result.completion_tokens)
                yield StreamEnd(self._finish(route, meta, result, started, call, prompt, span))
            except errors.LLMError as exc:
                self._error(route.model, exc)
                span.set_attribute("error.type", exc.kind)
                raise

    # ---- embeddings ------------------------------------------------------------------------
    def embedding_model(self, model: str) -> tuple[str, registry.ModelInfo]:
        name = model or self.config.default_embedding_model
        info = registry.model_info(name)
        if not info.embedding:
            raise errors.InvalidRequest(f"model {name!r} is not an embedding model")
        return name, info

    async def embed(self, model: str, texts: list[str], meta: CallMeta,
                    deadline: float | None = None, background: bool = False) -> tuple[str, int, np.ndarray, int]:
        """(model, dim, vectors as an n x dim float32 matrix, tokens). `background`: nobody waits for
        it (local model: one core)."""
        name, info = self.embedding_model(model)
        system = "onnxruntime" if info.provider == "local" else "openai"
        attrs = {"mnemo.tenant_id": meta.tenant_id, "mnemo.agent_id": meta.agent_id, "mnemo.turn_id": meta.turn_id}
        with telemetry.llm_span("embeddings", name, provider=system, tracer=TRACER, attributes=attrs) as span:
            started = time.perf_counter()
            try:
                if info.provider == "local":
                    embedder = self.background_embedder if background else self.embedder
                    vectors, used = await embedder.embed_async(texts)
                    dim, provider = LOCAL_DIM, "local"
                else:
                    route = self.route(name)
                    if not hasattr(route.provider, "embed"):
                        raise errors.InvalidRequest(f"provider {route.config.name!r} has no embeddings")
                    timeout = self._timeout(route, deadline)

                    async def attempt() -> tuple[list[list[float]], int]:
                        async with route.semaphore:
                            return await route.provider.embed(name, texts, timeout)

                    found, used = await call_with_resilience(attempt, route.breaker, route.policy)
                    dim, provider = (len(found[0]) if found else info.embedding_dim), route.config.name
                    if any(len(v) != dim for v in found):
                        raise errors.ProviderError(f"provider {route.config.name!r} returned vectors of "
                                                   "different lengths")
                    vectors = np.asarray(found, dtype=np.float32).reshape(len(found), dim)
            except errors.LLMError as exc:
                self._error(name, exc)
                raise
            latency = (time.perf_counter() - started) * 1000
            span.set_attribute("gen_ai.response.model", name)
            span.set_attribute("gen_ai.usage.input_tokens", used)
            metrics.TOKENS.add(used, {"model": name, "kind": "input"})
            metrics.LLM_LATENCY.record(latency / 1000, {"model": name, "operation": "embeddings"})
            if self.meter is not None:
                self.meter.record(UsageRecord(meta.tenant_id, meta.agent_id, name, provider, "embedding",
                                              used, 0, round(latency, 3), kind="embed"))
            return name, dim, vectors, used
