"""The OpenAI-compatible endpoint, driven by the real `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.fixtures_stack import Stack, module_stack  # noqa: F401


def _client(stack: Stack, api_key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.base_url + "/v1", api_key=api_key or stack.api_key, max_retries=0)


async def test_chat_completion_talks_to_a_stateful_agent(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = (await module_stack.create_agent(persona="P", human="H"))["id"]
    client = _client(module_stack)
    resp = await client.chat.completions.create(
        model=f"agent:{agent_id}", messages=[{"role": "system", "content": "ignored: the agent has its own"},
                                             {"role": "user", "content": "what is my name?"}])
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "You said: what is my name?"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    # It is the same stateful agent as over REST: the exchange is in its history.
    async with module_stack.http() as http:
        events = (await http.get(f"/v1/agents/{agent_id}/events")).json()["events"]
    assert [e["text"] for e in events if e["type"] == "assistant_message"] == ["You said: what is my name?"]
    await client.close()


async def test_chat_completion_streaming(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = (await module_stack.create_agent())["id"]
    scripted_llm.push(
        {"tool_call": {"name": "send_message", "arguments": {"message": "part one", "request_heartbeat": True}}},
        {"tool_call": {"name": "send_message", "arguments": {"message": "part two", "request_heartbeat": False}}})
    client = _client(module_stack)
    stream = await client.chat.completions.create(model=f"agent:{agent_id}", stream=True,
                                                  messages=[{"role": "user", "content": "stream it"}])
    pieces, finish = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == "part one\npart two"
    assert finish == "stop"
    await client.close()


async def test_chat_completion_errors(module_stack: Stack) -> None:
    client = _client(module_stack)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="agent:agent-missing",
                                             messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        await _client(module_stack, api_key="mk-wrong").chat.completions.create(
            model="agent:x", messages=[{"role": "user", "content": "hi"}])
    await client.close()
