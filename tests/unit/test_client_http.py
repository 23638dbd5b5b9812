"""The client's protocol logic: error mapping, typed parsing, SSE parsing and resume after a broken stream.

The server side here is an httpx transport speaking the gateway's documented wire format; the real
gateway is exercised end to end in tests/e2e."""

from __future__ import annotations

import json

import httpx
import pytest

from mnemo.client import (
    AsyncMnemo,
    AuthenticationError,
    Mnemo,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from mnemo.client.errors import APIConnectionError


def sse(*events: dict) -> bytes:
    return "".join(f"event: {e['type']}\nid: {e['seq']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


TURN = [
    {"type": "inner_thought", "seq": 3, "turn_id": "t1", "text": "thinking"},
    {"type": "function_call", "seq": 4, "turn_id": "t1", "name": "send_message", "arguments": "{}"},
    {"type": "assistant_message", "seq": 5, "turn_id": "t1", "text": "hello"},
    {"type": "turn_completed", "seq": 7, "turn_id": "t1", "stop_reason": "end_turn"},
]


def test_errors_are_typed_with_status_and_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/missing"):
            return httpx.Response(404, json={"detail": "agent not found"})
        if path == "/v1/agents" and request.method == "POST":
            return httpx.Response(422, json={"detail": [{"loc": ["body", "name"], "msg": "too long"}]})
        if path == "/v1/personas":
            return httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "2"})
        if path == "/v1/humans":
            return httpx.Response(401, json={"detail": "invalid API key"})
        return httpx.Response(503, text="unavailable")

    client = Mnemo(base_url="http://mnemo.test", api_key="k", transport=httpx.MockTransport(handler))
    with pytest.raises(NotFoundError) as nf:
        client.agents.get("missing")
    assert (nf.value.status, nf.value.reason) == (404, "agent not found")
    with pytest.raises(ValidationError) as ve:
        client.agents.create(name="x" * 500)
    assert ve.value.reason == "name: too long"
    with pytest.raises(RateLimitError) as rl:
        client.personas.list()
    assert rl.value.retry_after == 2.0
    with pytest.raises(AuthenticationError):
        client.humans.list()
    with pytest.raises(ServerError) as se:
        client.agents.memory("a1")
    assert se.value.status == 503 and se.value.reason == "unavailable"


def test_unreachable_server_is_a_connection_error() -> None:
    client = Mnemo(base_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(APIConnectionError) as info:
        client.agents.list()
    assert info.value.status == 0 and "mnemo up" in info.value.reason


def test_key_sent_and_results_typed(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "api_key").write_text("mk-from-file\n")
    monkeypatch.setenv("MNEMO_HOME", str(tmp_path))
    monkeypatch.delenv("MNEMO_API_KEY", raising=False)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        if request.url.path == "/v1/agents" and request.method == "GET":
            return httpx.Response(200, json={"agents": [{"id": "a1", "name": "sam", "extra": 1}], "total": 1})
        return httpx.Response(200, json={"turn_id": "t1", "stop_reason": "end_turn", "events": TURN,
                                         "usage": {"total_tokens": 9}})

    client = Mnemo(base_url="http://mnemo.test", transport=httpx.MockTransport(handler))
    agents = client.agents.list()
    assert [a.name for a in agents] == ["sam"] and agents[0].model_extra == {"extra": 1}
    result = client.agents.send_message("a1", "hi")
    assert result.reply == "hello" and result.events[-1].stop_reason == "end_turn"
    assert seen == ["Bearer mk-from-file"] * 2


def test_stream_resumes_after_a_broken_connection() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if request.method == "POST":
            # The connection ends after two events, before the turn completed.
            return httpx.Response(200, content=sse(*TURN[:2]), headers={"content-type": "text/event-stream"})
        after = int(request.url.params["after"])
        rest = [e for e in TURN if e["seq"] > after]
        return httpx.Response(200, content=sse(*rest), headers={"content-type": "text/event-stream"})

    client = Mnemo(base_url="http://mnemo.test", api_key="k", transport=httpx.MockTransport(handler))
    events = list(client.agents.stream_message("a1", "hi"))
    assert [e.seq for e in events] == [3, 4, 5, 7]
    assert events[-1].is_final
    assert calls[1].startswith("GET /v1/agents/a1/events?after=4")
    assert "turn_id=t1" in calls[1]


async def test_async_stream_and_json_events() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, content=sse(*TURN), headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"events": TURN[2:]})

    async with AsyncMnemo(base_url="http://mnemo.test", api_key="k",
                          transport=httpx.MockTransport(handler)) as client:
        streamed = [e async for e in client.agents.stream_message("a1", "hi")]
        assert [e.type for e in streamed] == [e["type"] for e in TURN]
        resumed = [e async for e in client.agents.events("a1", after=4)]
        assert [e.seq for e in resumed] == [5, 7]
