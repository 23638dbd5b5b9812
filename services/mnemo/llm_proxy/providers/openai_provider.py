"""Any OpenAI-compatible endpoint through the official `openai` SDK (AsyncOpenAI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from mnemo.llm_proxy import errors
from mnemo.llm_proxy.config import ProviderConfig
from mnemo.llm_proxy.providers.base import ChatCall, ChatResult
from mnemo.llm_proxy.toolcalls import call_schema, constrained_call, local_messages

# Request fields handed to the SDK through `extra_body` (merged verbatim into the JSON body) instead
# of as typed arguments: the SDK's typed-argument transform walks every message, content part and
# schema node with typing introspection (~0.25 ms per message, the proxy's largest cost on long
# queues). Our values are already plain JSON dicts, so the transform has nothing to change in them.
_PLAIN_FIELDS = ("messages", "tools", "tool_choice", "functions", "function_call", "response_format")

_OVERFLOW_MARKERS = ("context_length_exceeded", "maximum context length", "context window",
                     "too many tokens", "prompt is too long", "reduce the length")


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(key)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                import time
                from email.utils import parsedate_to_datetime

                try:
                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    return None
    return None


def classify(exc: Exception, provider: str) -> errors.LLMError:
    """An SDK exception as one of our typed errors (retryable or not)."""
    if isinstance(exc, openai.APITimeoutError):
        return errors.Timeout(f"provider {provider!r} timed out")
    if isinstance(exc, openai.APIConnectionError):
        return errors.ProviderUnavailable(f"provider {provider!r} unreachable: {exc}", retryable=True)
    if not isinstance(exc, openai.APIStatusError):
        return errors.ProviderError(f"provider {provider!r} failed: {exc}")
    body = exc.body if isinstance(exc.body, dict) else {}
    code = str(body.get("code") or (body.get("error") or {}).get("code") or getattr(exc, "code", "") or "")
    return classify_status(exc.status_code, code, f"{exc.message}",
                           exc.response.headers if exc.response is not None else None, provider)


def classify_status(status: int, code: str, text: str, headers: Any, provider: str) -> errors.LLMError:
    """An error status of the endpoint (with the error's `code` and message) as a typed error."""
    after = _retry_after(headers)
    if status == 429:
        return errors.RateLimited(f"provider {provider!r} rate limited: {text}", retry_after=after, retryable=True)
    if code == "context_length_exceeded" or (status in (400, 413) and any(
            m in text.lower() for m in _OVERFLOW_MARKERS)):
        return errors.ContextOverflow(f"context_length_exceeded: {text}")
    if status in (408, 409) or status >= 500:
        return errors.ProviderError(f"provider {provider!r} error {status}: {text}", retry_after=after,
                                    retryable=True)
    if status in (401, 403):
        return errors.ProviderUnavailable(f"provider {provider!r} refused our credentials ({status})")
    return errors.InvalidRequest(f"provider {provider!r} rejected the request ({status}): {text}")


def _error_of(raw: bytes) -> tuple[str, str]:
    """(code, message) of an error response body (OpenAI's `{"error": {...}}` or anything else)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "", raw[:500].decode("utf-8", "replace")
    if not isinstance(body, dict):
        return "", str(body)[:500]
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("code") or body.get("code") or ""), str(err.get("message") or err)[:500]
    return str(body.get("code") or ""), str(err or body.get("message") or body)[:500]


def _legacy_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """tool_calls / tool messages in the legacy `function_call` / `function` form."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            fn = m["tool_calls"][0]["function"]
            out.append({"role": "assistant", "content": m.get("content"),
                        "function_call": {"name": fn["name"], "arguments": fn["arguments"]}})
        elif m.get("role") == "tool":
            out.append({"role": "function", "name": m.get("name") or "function", "content": m.get("content") or ""})
        else:
            out.append(m)
    return out


def json_body(kw: dict[str, Any], call: ChatCall) -> bytes:
    """`kw` as a JSON request body; messages sent unchanged are joined from their cached encodings.
    InvalidRequest when it holds what JSON cannot carry (an integer beyond 64 bits in a tool's schema
    that no edge checked, such as an MCP server's)."""
    try:
        if kw.get("messages") is not call.messages or len(call.messages_json) != len(call.messages):
            return orjson.dumps(kw)
        head = orjson.dumps({k: v for k, v in kw.items() if k != "messages"})
    except TypeError as exc:
        raise errors.InvalidRequest(f"the request cannot be encoded as JSON: {exc}") from None
    return b"".join((head[:-1], b"," if len(head) > 2 else b"", b'"messages":[',
                     b",".join(call.messages_json), b"]}"))


def _env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for `url`, if any."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth


class OpenAIProvider:
    """Chat, streaming chat and embeddings against one OpenAI-compatible endpoint."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self.config = config
        # The SDK's aiohttp transport: about 0.45 ms less CPU per call than its default (measured).
        self.client = openai.AsyncOpenAI(base_url=config.base_url, api_key=config.resolved_api_key() or "none",
                                         timeout=config.timeout, max_retries=0,
                                         http_client=openai.DefaultAioHttpClient(timeout=config.timeout))
        # Chat completions (the turn's hot path) go straight through aiohttp, to the endpoint, with the
        # headers and credentials the SDK resolved: the SDK's request building, its httpx-style layer
        # over aiohttp and its session's per-request environment lookups were a quarter of the
        # llm-proxy's event loop under load (py-spy, 3 replicas at 250 turns/s); one call costs
        # 0.19-0.23 ms of CPU and 0.35-0.42 ms end to end instead of 0.68-0.74 and 0.88-0.95 ms
        # (in-process scripted endpoint). Streaming and embeddings stay on the SDK.
        self._completions_url = f"{str(self.client.base_url).rstrip('/')}/chat/completions"
        self._headers = {**{k: v for k, v in self.client.default_headers.items() if isinstance(v, str)},
                         **self.client.auth_headers}
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        # The proxy the environment names for the endpoint (HTTPS_PROXY, NO_PROXY...), read once: a
        # session that reads the environment itself (trust_env) looks for a netrc file on every
        # request, off the event loop, ~0.5 ms a call.
        self._proxy, self._proxy_auth = _env_proxy(self._completions_url)

    def _kwargs(self, call: ChatCall) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": call.model}
        if call.max_tokens:
            kw["max_tokens"] = call.max_tokens
        if call.temperature is not None:
            kw["temperature"] = call.temperature
        if call.tools and call.tool_choice != "none":
            if self.config.constrained_tools:
                # Models without reliable tool calling: the call as JSON-schema constrained output.
                kw["messages"] = local_messages(call, with_tools=True)
                kw["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "function_call", "schema": call_schema(call.tools, call.tool_choice)}}
                return kw
            if self.config.legacy_functions:
                kw["messages"] = _legacy_messages(call.messages)
                kw["functions"] = [t["function"] for t in call.tools]
                if call.tool_choice not in ("auto", "required", ""):
                    kw["function_call"] = {"name": call.tool_choice}
                return kw
            kw["tools"] = call.tools
            if call.tool_choice in ("auto", "required"):
                kw["tool_choice"] = call.tool_choice
            elif call.tool_choice:
                kw["tool_choice"] = {"type": "function", "function": {"name": call.tool_choice}}
        kw["messages"] = call.messages if not self.config.legacy_functions else _legacy_messages(call.messages)
        return kw

    def _create_args(self, call: ChatCall) -> dict[str, Any]:
        """Arguments of `chat.completions.create`: the bulky plain-JSON fields go through `extra_body`
        (the SDK sends them unchanged; `messages=[]` only satisfies its required argument and is
        overridden by extra_body, which takes precedence)."""
        kw = self._kwargs(call)
        plain = {k: kw.pop(k) for k in _PLAIN_FIELDS if k in kw}
        kw["messages"] = []
        kw["extra_body"] = plain
        return kw

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session_loop = loop
            self._session = aiohttp.ClientSession(
                headers=self._headers, connector=aiohttp.TCPConnector(limit=max(100, self.config.max_concurrency)))
        return self._session

    async def chat(self, call: ChatCall, timeout: float) -> ChatResult:
        # The body is encoded here (orjson, several times faster than json.dumps on a long queue) and
        # the reply decoded by orjson; errors are classified as the SDK's would be (classify_status).
        body = json_body(self._kwargs(call), call)
        try:
            async with self._http().post(self._completions_url, data=body, proxy=self._proxy,
                                         proxy_auth=self._proxy_auth,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    code, text = _error_of(raw)
                    raise classify_status(resp.status, code, text, resp.headers, self.name)
        except TimeoutError:
            raise errors.Timeout(f"provider {self.name!r} timed out") from None
        except aiohttp.ClientError as exc:
            raise errors.ProviderUnavailable(f"provider {self.name!r} unreachable: {exc}", retryable=True) from None
        try:
            return self._result(orjson.loads(raw), call)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise errors.ProviderError(f"provider {self.name!r} returned an unreadable completion "
                                       f"({type(exc).__name__}: {str(exc)[:200]})") from None

    def _result(self, data: dict[str, Any], call: ChatCall) -> ChatResult:
        """A chat completion (as decoded JSON) as our ChatResult."""
        choices = data.get("choices") or []
        if not choices:
            raise errors.ProviderError(f"provider {self.name!r} returned no choices")
        choice = choices[0]
        msg = choice.get("message") or {}
        raw = [(c.get("id") or "", fn.get("name") or "", fn.get("arguments") or "")
               for c in msg.get("tool_calls") or () if (fn := c.get("function")) is not None]
        legacy = msg.get("function_call")
        if not raw and legacy:
            raw = [("", legacy.get("name") or "", legacy.get("arguments") or "")]
        content = msg.get("content") or ""
        if not isinstance(content, str):  # content parts: their text, joined
            content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        if self.config.constrained_tools and call.tools and call.tool_choice != "none" and not raw:
            content, raw = constrained_call(content)
        usage = data.get("usage") or {}
        return ChatResult(content=content, raw_calls=raw, finish_reason=choice.get("finish_reason") or "",
                          prompt_tokens=usage.get("prompt_tokens") or 0,
                          completion_tokens=usage.get("completion_tokens") or 0,
                          model=data.get("model") or call.model)

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[str | ChatResult]:
        kw = self._create_args(call)
        try:
            stream = await self.client.chat.completions.create(
                **kw, stream=True, stream_options={"include_usage": True}, timeout=timeout)
            content: list[str] = []
            calls: dict[int, list[str]] = {}   # index -> [id, name, arguments]
            finish, model, prompt, completion = "", call.model, 0, 0
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage:
                    prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        content.append(delta.content)
                        yield delta.content
                    for tc in delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, ["", "", ""])
                        if tc.id:
                            slot[0] = tc.id
                        if tc.function is not None:
                            slot[1] += tc.function.name or ""
                            slot[2] += tc.function.arguments or ""
                    fc = getattr(delta, "function_call", None)
                    if fc is not None:
                        slot = calls.setdefault(0, ["", "", ""])
                        slot[1] += fc.name or ""
                        slot[2] += fc.arguments or ""
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.OpenAIError as exc:
            raise classify(exc, self.name) from None
        raw = [(c[0], c[1], c[2]) for _, c in sorted(calls.items())]
        yield ChatResult("".join(content), raw, finish, prompt, completion, model)

    async def embed(self, model: str, texts: list[str], timeout: float) -> tuple[list[list[float]], int]:
        try:
            resp = await self.client.embeddings.create(model=model, input=texts, timeout=timeout)
        except openai.OpenAIError as exc:
            raise classify(exc, self.name) from None
        data = sorted(resp.data, key=lambda d: d.index)
        return [list(d.embedding) for d in data], (resp.usage.prompt_tokens if resp.usage else 0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self.client.close()
