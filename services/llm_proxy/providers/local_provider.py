"""A GGUF model run in-process by llama.cpp (llama-cpp-python).

Inference runs in a worker thread, never on the event loop, behind a semaphore (default 1 call at
a time). Small local models have no reliable native tool calling: when tools are given, the output
is constrained by a grammar built from a JSON schema `{"thought"?, "name": <tool>, "arguments": ...}`
and converted into a standard tool call.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from mnemo.llm_proxy import errors
from mnemo.llm_proxy.config import ProviderConfig, default_local_model_path
from mnemo.llm_proxy.providers.base import ChatCall, ChatResult
from mnemo.llm_proxy.toolcalls import call_schema, constrained_call, local_messages

log = logging.getLogger(__name__)

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def _close_models() -> None:
    # Free llama.cpp models before interpreter teardown (their __del__ fails once modules are gone).
    with _models_lock:
        for llm in _models.values():
            try:
                llm.close()
            except Exception:  # noqa: BLE001
                pass
        _models.clear()


atexit.register(_close_models)


def default_threads() -> int:
    # One thread per two cores: llama.cpp's spinning thread barrier collapses when the threads
    # compete with other processes for every core.
    return max(1, (os.cpu_count() or 2) // 2)


def load_model(path: str, n_ctx: int, n_threads: int | None = None) -> Any:
    """One llama.cpp model per (file, context size) per process."""
    key = (path, n_ctx)
    with _models_lock:
        if key not in _models:
            import llama_cpp

            if not os.path.exists(path):
                raise errors.ProviderUnavailable(f"local model file not found: {path}")
            _models[key] = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads or default_threads(),
                                           verbose=False)
        return _models[key]


class LocalProvider:
    """llama.cpp chat on one GGUF file."""

    def __init__(self, config: ProviderConfig, concurrency: int = 1) -> None:
        self.name = config.name
        self.config = config
        self.path = config.model_path or default_local_model_path()
        self.semaphore = asyncio.Semaphore(max(1, concurrency))

    def _complete(self, call: ChatCall) -> ChatResult:
        from llama_cpp import LlamaGrammar

        llm = load_model(self.path, self.config.n_ctx, self.config.n_threads)
        with_tools = bool(call.tools) and call.tool_choice != "none"
        kwargs: dict[str, Any] = {"max_tokens": call.max_tokens or 512,
                                  "temperature": 0.0 if call.temperature is None else call.temperature,
                                  "repeat_penalty": 1.15}
        if with_tools:
            schema = call_schema(call.tools, call.tool_choice)
            kwargs["grammar"] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        try:
            resp = llm.create_chat_completion(messages=local_messages(call, with_tools), **kwargs)
        except ValueError as exc:   # llama.cpp: "Requested tokens (...) exceed context window"
            if "context window" in str(exc):
                raise errors.ContextOverflow(f"context_length_exceeded: {exc}") from None
            raise errors.InvalidRequest(str(exc)) from None
        choice = resp["choices"][0]
        text = choice["message"].get("content") or ""
        usage = resp.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
        raw: list[tuple[str, str, str]] = []
        content = text
        if with_tools:
            content, raw = constrained_call(text)
            if raw and raw[0][1] and finish != "length":
                finish = "tool_calls"
        return ChatResult(content=content, raw_calls=raw, finish_reason=finish,
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          model=call.model)

    async def chat(self, call: ChatCall, timeout: float) -> ChatResult:
        async with self.semaphore:
            try:
                return await asyncio.wait_for(asyncio.to_thread(self._complete, call), timeout)
            except asyncio.TimeoutError:
                raise errors.Timeout(f"local model did not answer within {timeout:.0f}s") from None

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[str | ChatResult]:
        result = await self.chat(call, timeout)
        if result.content:
            yield result.content
        yield result

    async def close(self) -> None:
        return None
