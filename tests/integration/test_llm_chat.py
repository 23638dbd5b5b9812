"""The llm-proxy's Chat / ChatStream / CountTokens / ListModels against the scripted model through
the real openai SDK and a real gRPC server."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from mnemo.common.grpcutil import client_channel
from mnemo.v1 import llm_pb2, llm_pb2_grpc
from tests.fixtures_llm import llm_service, llm_stub, start_llm_service  # noqa: F401
from tests.fixtures_observability import by_name, span_exporter  # noqa: F401

SEND = llm_pb2.Tool(name="send_message", description="Send a message to the user",
                    parameters_json=json.dumps({"type": "object", "properties": {
                        "message": {"type": "string", "description": "the text"}}, "required": ["message"]}))
SEARCH = llm_pb2.Tool(name="archival_memory_search", description="Search archival memory",
                      parameters_json=json.dumps({"type": "object", "properties": {"query": {"type": "string"}}}))


def req(text: str = "hello", tools: tuple = (SEND, SEARCH), **kw: Any) -> llm_pb2.ChatRequest:
    kw.setdefault("model", "gpt-4o-mini")
    return llm_pb2.ChatRequest(messages=[llm_pb2.ChatMessage(role="system", content="You are Sam."),
                                         llm_pb2.ChatMessage(role="user", content=text)],
                               tools=list(tools), tenant_id="t1", agent_id="a1", turn_id="turn-1", **kw)


async def test_chat_with_native_tool_call(llm_stub, scripted_llm) -> None:
    resp = await llm_stub.Chat(req("hi there"))
    assert resp.finish_reason == "tool_calls"
    (call,) = resp.message.tool_calls
    assert call.name == "send_message" and call.id
    assert json.loads(call.arguments)["message"] == "You said: hi there"
    assert resp.provider == "openai" and resp.model == "gpt-4o-mini" and not resp.tool_call_error
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens + 8
    body = scripted_llm.chat_requests()[-1]
    assert [t["function"]["name"] for t in body["tools"]] == ["send_message", "archival_memory_search"]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["message"]


@pytest.mark.parametrize("body", ["not json at all", '{"choices": "nope"}', '{"choices": []}', "[1, 2]"])
async def test_an_unreadable_completion_is_a_provider_error_with_its_reason(llm_stub, scripted_llm, body) -> None:
    scripted_llm.push(*[{"raw": body}] * 3)  # every attempt gets it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req("hi"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "provider 'openai'" in (err.value.details() or "")
    scripted_llm.reset()


async def test_content_parts_are_read_as_text(llm_stub, scripted_llm) -> None:
    scripted_llm.push({"raw": json.dumps({"model": "m", "choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}]}}]})})
    resp = await llm_stub.Chat(req("hi", tools=()))
    assert resp.message.content == "two parts" and resp.finish_reason == "stop" and resp.usage.prompt_tokens >= 0


async def test_history_with_tool_calls_round_trips(llm_stub, scripted_llm) -> None:
    r = req("x")
    r.messages.append(llm_pb2.ChatMessage(role="assistant", content="thinking", tool_calls=[
        llm_pb2.ChatMessage().tool_calls.add(id="call_1", name="archival_memory_search", arguments='{"query": "q"}')]))
    r.messages.append(llm_pb2.ChatMessage(role="tool", tool_call_id="call_1", name="archival_memory_search",
                                          content='{"status": "OK"}'))
    resp = await llm_stub.Chat(r)
    assert resp.message.content == "Done." and not resp.message.tool_calls
    sent = scripted_llm.chat_requests()[-1]["messages"]
    assert sent[2]["tool_calls"][0]["function"]["name"] == "archival_memory_search"
    assert sent[3]["role"] == "tool" and sent[3]["tool_call_id"] == "call_1"


async def test_legacy_functions(scripted_llm, nats_url) -> None:
    service = await start_llm_service(scripted_llm.base_url, nats_url, legacy_functions=True)
    try:
        async with client_channel(service.address) as ch:
            resp = await llm_pb2_grpc.LLMServiceStub(ch).Chat(req("old api"))
        body = scripted_llm.chat_requests()[-1]
        assert "functions" in body and "tools" not in body
        assert body["functions"][0]["name"] == "send_message"
        (call,) = resp.message.tool_calls
        assert call.name == "send_message" and call.id.startswith("call_")
    finally:
        await service.stop()


async def test_malformed_arguments_reported_not_crashing(llm_stub, scripted_llm) -> None:
    scripted_llm.push({"tool_call": {"name": "send_message", "arguments": "this is not json"}})
    resp = await llm_stub.Chat(req())
    assert not resp.message.tool_calls
    assert "send_message" in resp.tool_call_error and "not valid JSON" in resp.tool_call_error


async def test_repairable_output_is_repaired(llm_stub, scripted_llm) -> None:
    scripted_llm.push({"tool_call": {"name": "send_message", "arguments": '{"message": "ok"} trailing'}},
                      {"tool_call": {"name": "no_such_function", "arguments": "{}"}},
                      {"content": '```json\n{"name": "send_message", "arguments": {"message": "from text"}}\n```'})
    r1 = await llm_stub.Chat(req())
    assert json.loads(r1.message.tool_calls[0].arguments) == {"message": "ok"} and not r1.tool_call_error
    r2 = await llm_stub.Chat(req())
    assert not r2.message.tool_calls and "unknown function 'no_such_function'" in r2.tool_call_error
    r3 = await llm_stub.Chat(req())
    assert r3.message.tool_calls[0].name == "send_message"
    assert json.loads(r3.message.tool_calls[0].arguments) == {"message": "from text"}


async def test_streaming_assembles_tool_calls(llm_stub, scripted_llm) -> None:
    scripted_llm.push({"content": "Let me answer. ", "tool_call": {"name": "send_message",
                                                                    "arguments": {"message": "x" * 50}}})
    chunks = [c async for c in llm_stub.ChatStream(req())]
    assert "".join(c.delta for c in chunks) == "Let me answer. "
    final = chunks[-1]
    assert final.finish_reason == "tool_calls" and final.usage.completion_tokens == 8
    (call,) = final.tool_calls
    assert call.name == "send_message" and json.loads(call.arguments) == {"message": "x" * 50}
    assert all(not c.tool_calls for c in chunks[:-1])
    assert scripted_llm.chat_requests()[-1]["stream"] is True


async def test_plain_text_stream(llm_stub, scripted_llm) -> None:
    chunks = [c async for c in llm_stub.ChatStream(req("summarize this", tools=()))]
    assert "".join(c.delta for c in chunks).startswith("Summary of earlier conversation: summarize this")
    assert chunks[-1].finish_reason == "stop"


async def test_bad_requests_are_invalid_argument(llm_stub) -> None:
    bad_tool = llm_pb2.Tool(name="f", parameters_json="{nope")
    # Regression: a schema no edge checked (an MCP server's) with an integer beyond 64 bits was an
    # internal error ("Integer exceeds 64-bit range"), retried as if transient.
    huge_tool = llm_pb2.Tool(name="g", parameters_json=f'{{"type": "object", "maximum": {2**70}}}')
    for request in (llm_pb2.ChatRequest(model="gpt-4o-mini"), req(tools=(bad_tool,)), req(tools=(huge_tool,)),
                    req(tool_choice="not_a_tool"), req(model="all-minilm-l6-v2")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await llm_stub.Chat(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


async def test_unknown_model_without_catch_all(scripted_llm, nats_url) -> None:
    from mnemo.llm_proxy.config import ModelSpec, ProviderConfig, ProxyConfig

    config = ProxyConfig(providers=[ProviderConfig(name="p", base_url=scripted_llm.base_url, api_key="k",
                                                   models=[ModelSpec(name="gpt-4o-mini")])])
    service = await start_llm_service(scripted_llm.base_url, nats_url, config=config)
    try:
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Chat(req(model="gpt-9-ultra"))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "unknown model 'gpt-9-ultra'" in err.value.details()
            assert (await stub.Chat(req())).message.tool_calls
    finally:
        await service.stop()


async def test_count_tokens_and_list_models(llm_stub) -> None:
    resp = await llm_stub.CountTokens(llm_pb2.CountTokensRequest(model="gpt-4", texts=["hello world"]))
    assert resp.total == 2 and list(resp.per_text) == [2] and resp.tokenizer == "cl100k_base"
    r = req()
    counted = await llm_stub.CountTokens(llm_pb2.CountTokensRequest(model="gpt-4o", messages=r.messages,
                                                                    tools=r.tools))
    assert counted.tools > 0 and len(counted.per_message) == 2
    assert counted.total == sum(counted.per_message) + 3 + counted.tools
    models = await llm_stub.ListModels(llm_pb2.ListModelsRequest())
    assert models.default_model == "gpt-4o-mini" and models.default_embedding_model == "all-minilm-l6-v2"
    by = {m.name: m for m in models.models}
    assert by["gpt-4o-mini"].context_window == 128_000 and by["gpt-4o-mini"].provider == "openai"
    assert by["all-minilm-l6-v2"].embedding and by["all-minilm-l6-v2"].embedding_dim == 384
    assert by["smollm2-135m-instruct"].provider == "local"


async def test_genai_span(llm_stub, span_exporter) -> None:
    await llm_stub.Chat(req(max_tokens=100))
    span = by_name(span_exporter.get_finished_spans(), "chat gpt-4o-mini")
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.system"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.output_tokens"] == 8 and a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.request.max_tokens"] == 100
    assert (a["mnemo.tenant_id"], a["mnemo.agent_id"], a["mnemo.turn_id"]) == ("t1", "a1", "turn-1")
    server = by_name(span_exporter.get_finished_spans(), "mnemo.v1.LLMService/Chat")
    assert span.parent is not None and span.parent.span_id == server.context.span_id


async def test_constrained_tool_calls_on_an_openai_compatible_endpoint(scripted_llm, nats_url) -> None:
    service = await start_llm_service(scripted_llm.base_url, nats_url, constrained_tools=True)
    try:
        scripted_llm.push({"content": '{"thought": "greet", "name": "send_message", "arguments": {"message": "hi"}}'})
        async with client_channel(service.address) as ch:
            resp = await llm_pb2_grpc.LLMServiceStub(ch).Chat(req())
        body = scripted_llm.chat_requests()[-1]
        assert "tools" not in body and body["response_format"]["type"] == "json_schema"
        names = [o["properties"]["name"]["const"] for o in body["response_format"]["json_schema"]["schema"]["anyOf"]]
        assert names == ["send_message", "archival_memory_search"]
        assert "send_message" in body["messages"][0]["content"]          # tool list in the system prompt
        assert resp.message.content == "greet" and resp.finish_reason == "tool_calls"
        assert [(c.name, json.loads(c.arguments)) for c in resp.message.tool_calls] == [
            ("send_message", {"message": "hi"})]
    finally:
        await service.stop()
