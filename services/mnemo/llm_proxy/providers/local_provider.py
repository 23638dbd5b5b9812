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
from mnemo.llm_proxy.config import ProviderConfig
from mnemo.llm_proxy.providers.base import ChatCall, ChatResult
from mnemo.llm_proxy.toolcalls import call_schema, constrained_call, local_messages, max_instance_chars
from mnemo.tokens import default_local_model_path

log = logging.getLogger(__name__)

_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


_running = 0  # inference threads inside llama.cpp right now (under _models_lock)


def _close_models() -> None:
    # Free llama.cpp models before interpreter teardown (their __del__ fails once modules are gone).
    # A model still in use by an abandoned inference thread is left to the OS: freeing it under
    # that thread would crash the process on its way out.
    with _models_lock:
        if _running:
            return
        for llm in _models.values():
            try:
                llm.close()
            except Exception:
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


MIN_STRING_CHARS = 48        # a string argument may always be at least this long
MAX_STRING_CHARS = 1000       # llama.cpp refuses larger repetitions ("exceeds sane defaults")
CHARS_PER_TOKEN = 2          # conservative for JSON text (English runs ~4)


def tool_output_budget(call: ChatCall) -> tuple[dict[str, Any], int]:
    """The grammar's schema, every string bounded, and a max_tokens its largest instance fits in:
    constrained output must close its JSON rather than be cut by max_tokens."""
    requested = call.max_tokens or 512
    string_chars = max(MIN_STRING_CHARS, min(MAX_STRING_CHARS, requested * CHARS_PER_TOKEN))
    schema = call_schema(call.tools, call.tool_choice, max_string_chars=string_chars)
    needed = max_instance_chars(schema) // CHARS_PER_TOKEN + 16
    return schema, max(requested, needed)


class LocalProvider:
    """llama.cpp chat on one GGUF file."""

    def __init__(self, config: ProviderConfig, concurrency: int = 1) -> None:
        self.name = config.name
        self.config = config
        self.path = config.model_path or default_local_model_path()
        self.semaphore = asyncio.Semaphore(max(1, concurrency))
        self._closing = threading.Event()   # read by inference threads, once per token
        self._closed = asyncio.Event()      # wakes the calls waiting for a slot or a result

    def _complete(self, call: ChatCall, abort: threading.Event) -> ChatResult:
        global _running
        with _models_lock:
            _running += 1
        try:
            return self._generate(call, abort)
        finally:
            with _models_lock:
                _running -= 1

    def _generate(self, call: ChatCall, abort: threading.Event) -> ChatResult:
        from llama_cpp import LlamaGrammar, LogitsProcessorList

        llm = load_model(self.path, self.config.n_ctx, self.config.n_threads)
        with_tools = bool(call.tools) and call.tool_choice != "none"
        eos = llm.token_eos()

        def stop_when_aborted(_ids: Any, scores: Any) -> Any:
            # Called per token from C (an exception here would be ignored): once aborted, only the
            # end-of-sequence token is left, so the generation ends.
            if abort.is_set() or self._closing.is_set():
                scores[:] = -float("inf")
                scores[eos] = 0.0
            return scores

        kwargs: dict[str, Any] = {"max_tokens": call.max_tokens or 512,
                                  "temperature": 0.0 if call.temperature is None else call.temperature,
                                  "repeat_penalty": 1.15}
        if not with_tools:
            # Grammar output is left alone (the grammar may forbid EOS mid-object): its size is bounded.
            kwargs["logits_processor"] = LogitsProcessorList([stop_when_aborted])
        if with_tools:
            schema, kwargs["max_tokens"] = tool_output_budget(call)
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
            if not raw:  # never "no call and no error": the engine reports this as tool_call_error
                content, raw = "", [("", "", text)]
            if raw and raw[0][1] and finish != "length":
                finish = "tool_calls"
        return ChatResult(content=content, raw_calls=raw, finish_reason=finish,
                          prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=int(usage.get("completion_tokens", 0)),
                          model=call.model)

    async def chat(self, call: ChatCall, timeout: float) -> ChatResult:
        """One inference in a daemon thread. The slot is held until the thread really ends (a
        llama.cpp model runs one inference at a time); the caller is answered at once on timeout
        or shutdown (the thread then stops at its next token)."""
        self._check_open()
        if not await self._until_closed(self.semaphore.acquire()):
            raise self._shutting_down()
        abort = threading.Event()
        try:
            result = _in_daemon_thread(self._complete, call, abort)
        except BaseException:
            self.semaphore.release()
            raise
        result.add_done_callback(self._release_slot)
        try:
            if not await self._until_closed(asyncio.shield(result), timeout):
                raise self._shutting_down()
            return result.result()
        except TimeoutError:
            raise errors.Timeout(f"local model did not answer within {timeout:.0f}s") from None
        finally:
            abort.set()

    async def _until_closed(self, awaitable: Any, timeout: float | None = None) -> bool:
        """Await `awaitable` (True), unless the provider closes first (False); TimeoutError on timeout."""
        task = asyncio.ensure_future(awaitable)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({task, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if task in done:
            task.result()
            return True
        task.cancel()
        if closed in done:
            return False
        raise TimeoutError

    def _release_slot(self, done: asyncio.Future[Any]) -> None:
        self.semaphore.release()
        if not done.cancelled():
            done.exception()  # retrieved: an abandoned call's error is not "never retrieved"

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise self._shutting_down()

    @staticmethod
    def _shutting_down() -> errors.ProviderUnavailable:
        return errors.ProviderUnavailable("the local model is shutting down (llm-proxy stopping)")

    def abort_pending(self) -> None:
        """Shutdown: every waiting or running call fails now with UNAVAILABLE; running inference
        stops at its next token, and nobody waits for it."""
        self._closing.set()
        self._closed.set()

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[str | ChatResult]:
        result = await self.chat(call, timeout)
        if result.content:
            yield result.content
        yield result

    async def close(self) -> None:
        self.abort_pending()


def _in_daemon_thread(fn: Any, *args: Any) -> asyncio.Future[Any]:
    """Run `fn(*args)` in a daemon thread: unlike asyncio.to_thread, a process that is stopping does
    not wait for it (the default executor is joined on exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as exc:
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is gone (process exiting): nobody is waiting
            pass

    threading.Thread(target=work, name="llama-cpp-inference", daemon=True).start()
    return future
