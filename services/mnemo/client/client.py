"""`Mnemo` (sync) and `AsyncMnemo` (async): REST clients of the Mnemo gateway over httpx."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse, connect_sse

from mnemo.client._config import default_api_key, default_base_url
from mnemo.client._sse import event_from_sse, events_from_json
from mnemo.client.blocks import Blocks
from mnemo.client.errors import APIConnectionError, StreamError, error_from_response
from mnemo.client.models import Event, TurnResult
from mnemo.client.resources import Admin, Agents, McpServers, Models, Templates
from mnemo.client.tool_loop import ApprovalHandler, ToolHandler, Waiting, approval_answer, tool_answer, waiting_calls

DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=5.0)
MAX_RESUMES = 5


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self.api_key = api_key if api_key is not None else default_api_key()
        self.agents = Agents(self)
        self.personas = Templates(self, "persona")
        self.humans = Templates(self, "human")
        self.admin = Admin(self)
        self.models = Models(self)
        self.mcp_servers = McpServers(self)
        self.blocks = Blocks(self)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @staticmethod
    def _result(resp: httpx.Response, cast: Callable[[Any], Any] | None, raw: bool) -> Any:
        if resp.status_code >= 400:
            raise error_from_response(resp)
        if raw:
            return resp.content
        if resp.status_code == 204 or not resp.content:
            data: Any = None
        else:
            try:
                data = resp.json()
            except ValueError:
                data = resp.text
        return cast(data) if cast else data

    def _connection_error(self, exc: httpx.HTTPError) -> APIConnectionError:
        return APIConnectionError(0, f"cannot reach Mnemo at {self.base_url} ({exc.__class__.__name__}: {exc}); "
                                     "is `mnemo up` running?")


def _turn_events_done(event: Event, turn_id: str | None) -> bool:
    return event.ends_wait and (turn_id is None or event.turn_id == turn_id)


def _next_call(result: TurnResult, events: list[Event], on_tool_call: ToolHandler | None,
               on_approval: ApprovalHandler | None) -> Waiting | None:
    """The first waiting call a handler is given for (None: the turn goes back to the caller)."""
    if not result.paused:
        return None
    for call in waiting_calls(events):
        if (call.kind == "tool" and on_tool_call is not None) or (call.kind == "approval" and on_approval):
            return call
    return None


def _merged(result: TurnResult, events: list[Event]) -> TurnResult:
    return result.model_copy(update={"events": events})


class Mnemo(_Base):
    """Synchronous client. `Mnemo()` finds the local server and its key by itself."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Mnemo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _request(self, method: str, path: str, *, cast: Callable[[Any], Any] | None = None,
                 raw: bool = False, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, headers={**self._headers(), **(headers or {})}, **kwargs)
        except httpx.HTTPError as exc:
            raise self._connection_error(exc) from exc
        return self._result(resp, cast, raw)

    def _sse(self, method: str, path: str, **kwargs: Any) -> Iterator[Event]:
        headers = {**self._headers(), "Accept": "text/event-stream", **kwargs.pop("headers", {})}
        with connect_sse(self._http, method, path, headers=headers, timeout=STREAM_TIMEOUT, **kwargs) as source:
            resp = source.response
            if resp.status_code >= 400:
                resp.read()
                raise error_from_response(resp)
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                resp.read()
                yield from events_from_json(resp.json())
                return
            for sse in source.iter_sse():
                event = event_from_sse(sse)
                if event is not None:
                    yield event

    def _stream_turn(self, agent_id: str, body: dict[str, Any], idempotency_key: str | None) -> Iterator[Event]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        last_seq, turn_id = 0, None
        try:
            for event in self._sse("POST", f"/v1/agents/{agent_id}/messages/stream", json=body, headers=headers):
                last_seq, turn_id = max(last_seq, event.seq), event.turn_id or turn_id
                yield event
                if event.ends_wait:
                    return
        except httpx.HTTPError as exc:
            if turn_id is None:
                raise self._connection_error(exc) from exc
        # The stream broke before the turn ended: resume from the last sequence number seen.
        for _ in range(MAX_RESUMES):
            try:
                for event in self._stream_events(agent_id, last_seq, turn_id, True):
                    last_seq = max(last_seq, event.seq)
                    yield event
                    if _turn_events_done(event, turn_id):
                        return
            except APIConnectionError:
                continue
        raise StreamError(0, f"the event stream of turn {turn_id} ended before the turn completed")

    def _turn_with_tools(self, agent_id: str, body: dict[str, Any], headers: dict[str, str] | None,
                         on_tool_call: ToolHandler | None, on_approval: ApprovalHandler | None) -> TurnResult:
        """A turn whose paused calls the handlers answer, until it ends or pauses on one they do not."""
        result: TurnResult = self._request("POST", f"/v1/agents/{agent_id}/messages", json=body, headers=headers,
                                           cast=TurnResult.model_validate)
        events = list(result.events)
        while (call := _next_call(result, events, on_tool_call, on_approval)) is not None:
            if call.kind == "tool":
                assert on_tool_call is not None
                try:
                    answer = tool_answer(call, on_tool_call(call.name, call.arguments), None)
                except Exception as exc:  # the tool failed: the agent is told why
                    answer = tool_answer(call, None, exc)
                path = "tool-results"
            else:
                assert on_approval is not None
                answer, path = approval_answer(call, on_approval(call.name, call.arguments)), "approvals"
            result = self._request("POST", f"/v1/agents/{agent_id}/{path}", json=answer,
                                   cast=TurnResult.model_validate)
            events.extend(result.events)
        return _merged(result, events)

    def _stream_events(self, agent_id: str, after: int, turn_id: str | None, follow: bool) -> Iterator[Event]:
        params: dict[str, Any] = {"after": after}
        if turn_id:
            params["turn_id"] = turn_id
        if follow:
            params["follow"] = "true"
        try:
            for event in self._sse("GET", f"/v1/agents/{agent_id}/events", params=params):
                if event.seq > after and (not turn_id or event.turn_id == turn_id):
                    yield event
        except httpx.HTTPError as exc:
            raise self._connection_error(exc) from exc


class AsyncMnemo(_Base):
    """Asynchronous client: the same resources, every call awaited; streams are async iterators."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMnemo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def healthy(self) -> bool:
        try:
            return (await self._http.get("/healthz", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def _request(self, method: str, path: str, *, cast: Callable[[Any], Any] | None = None,
                       raw: bool = False, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        try:
            resp = await self._http.request(method, path, headers={**self._headers(), **(headers or {})},
                                            **kwargs)
        except httpx.HTTPError as exc:
            raise self._connection_error(exc) from exc
        return self._result(resp, cast, raw)

    async def _sse(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[Event]:
        headers = {**self._headers(), "Accept": "text/event-stream", **kwargs.pop("headers", {})}
        async with aconnect_sse(self._http, method, path, headers=headers, timeout=STREAM_TIMEOUT,
                                **kwargs) as source:
            resp = source.response
            if resp.status_code >= 400:
                await resp.aread()
                raise error_from_response(resp)
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                await resp.aread()
                for event in events_from_json(resp.json()):
                    yield event
                return
            async for sse in source.aiter_sse():
                parsed = event_from_sse(sse)
                if parsed is not None:
                    yield parsed

    async def _stream_turn(self, agent_id: str, body: dict[str, Any],
                           idempotency_key: str | None) -> AsyncIterator[Event]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        last_seq, turn_id = 0, None
        try:
            async for event in self._sse("POST", f"/v1/agents/{agent_id}/messages/stream", json=body,
                                         headers=headers):
                last_seq, turn_id = max(last_seq, event.seq), event.turn_id or turn_id
                yield event
                if event.ends_wait:
                    return
        except httpx.HTTPError as exc:
            if turn_id is None:
                raise self._connection_error(exc) from exc
        for _ in range(MAX_RESUMES):
            try:
                async for event in self._stream_events(agent_id, last_seq, turn_id, True):
                    last_seq = max(last_seq, event.seq)
                    yield event
                    if _turn_events_done(event, turn_id):
                        return
            except APIConnectionError:
                continue
        raise StreamError(0, f"the event stream of turn {turn_id} ended before the turn completed")

    async def _turn_with_tools(self, agent_id: str, body: dict[str, Any], headers: dict[str, str] | None,
                               on_tool_call: ToolHandler | None, on_approval: ApprovalHandler | None) -> TurnResult:
        """`Mnemo._turn_with_tools`, with handlers that may be coroutines."""
        result: TurnResult = await self._request("POST", f"/v1/agents/{agent_id}/messages", json=body,
                                                 headers=headers, cast=TurnResult.model_validate)
        events = list(result.events)
        while (call := _next_call(result, events, on_tool_call, on_approval)) is not None:
            if call.kind == "tool":
                assert on_tool_call is not None
                try:
                    answer = tool_answer(call, await _value(on_tool_call(call.name, call.arguments)), None)
                except Exception as exc:  # the tool failed: the agent is told why
                    answer = tool_answer(call, None, exc)
                path = "tool-results"
            else:
                assert on_approval is not None
                decision = await _value(on_approval(call.name, call.arguments))
                answer, path = approval_answer(call, decision), "approvals"
            result = await self._request("POST", f"/v1/agents/{agent_id}/{path}", json=answer,
                                         cast=TurnResult.model_validate)
            events.extend(result.events)
        return _merged(result, events)

    async def _stream_events(self, agent_id: str, after: int, turn_id: str | None,
                             follow: bool) -> AsyncIterator[Event]:
        params: dict[str, Any] = {"after": after}
        if turn_id:
            params["turn_id"] = turn_id
        if follow:
            params["follow"] = "true"
        try:
            async for event in self._sse("GET", f"/v1/agents/{agent_id}/events", params=params):
                if event.seq > after and (not turn_id or event.turn_id == turn_id):
                    yield event
        except httpx.HTTPError as exc:
            raise self._connection_error(exc) from exc


async def _value(outcome: Any) -> Any:
    """A handler's result, awaited when it is a coroutine."""
    return await outcome if inspect.isawaitable(outcome) else outcome
