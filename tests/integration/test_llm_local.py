"""The local provider: SmolLM2-135M-Instruct in-process (llama.cpp), tool calls by constrained output."""

from __future__ import annotations

import json

import pytest

from mnemo.v1 import llm_pb2
from tests.fixtures_llm import llm_service, llm_stub  # noqa: F401
from tests.integration.test_llm_chat import SEARCH, SEND


@pytest.mark.slow
async def test_local_model_constrained_tool_call(llm_stub) -> None:
    request = llm_pb2.ChatRequest(
        model="smollm2-135m-instruct", max_tokens=80, tools=[SEND, SEARCH], tenant_id="t1", agent_id="a1",
        messages=[llm_pb2.ChatMessage(role="system", content="You are a helpful assistant."),
                  llm_pb2.ChatMessage(role="user", content="Say hello to me.")])
    resp = await llm_stub.Chat(request, timeout=240)
    assert resp.provider == "local" and resp.model == "smollm2-135m-instruct"
    assert not resp.tool_call_error, resp.tool_call_error
    (call,) = resp.message.tool_calls
    assert call.name in ("send_message", "archival_memory_search") and call.id.startswith("call_")
    args = json.loads(call.arguments)
    assert isinstance(args, dict)
    if call.name == "send_message":
        assert isinstance(args["message"], str)
    assert resp.finish_reason == "tool_calls"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0

    # A forced function and the local vocabulary for counting.
    forced = llm_pb2.ChatRequest(model="smollm2-135m-instruct", max_tokens=40, tools=[SEND, SEARCH],
                                 tool_choice="archival_memory_search", messages=request.messages)
    resp2 = await llm_stub.Chat(forced, timeout=240)
    assert [c.name for c in resp2.message.tool_calls] == ["archival_memory_search"]
    count = await llm_stub.CountTokens(llm_pb2.CountTokensRequest(model="smollm2-135m-instruct",
                                                                  texts=["hello world"]))
    assert count.tokenizer == "local:smollm2-135m-instruct" and count.total > 0
