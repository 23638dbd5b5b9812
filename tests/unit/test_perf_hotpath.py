"""Hot-path performance choices that must not change behaviour: what the recall indexer embeds, the
local embedder's cache, the bulky chat fields the openai provider hands to the SDK untransformed, and
the caches of rendered queue messages in the orchestrator and the llm-proxy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from mnemo.llm_proxy.config import ProviderConfig
from mnemo.llm_proxy.convert import MessageDicts, chat_call, message_dict
from mnemo.llm_proxy.embeddings import LocalEmbedder
from mnemo.llm_proxy.providers.base import ChatCall
from mnemo.llm_proxy.providers.openai_provider import OpenAIProvider, json_body
from mnemo.memory.recall import NEIGHBOUR_MIX, RecallIndexer, contextual_vectors, needs_meaning
from mnemo.memory.search.base import RecallDoc
from mnemo.orchestrator.context import Assembled, RenderCache, chat_dict, to_chat_message
from mnemo.v1 import common_pb2, llm_pb2

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def doc(i: int, role: str, text: str, agent: str = "a1") -> RecallDoc:
    return RecallDoc(id=f"m{i}", tenant_id="t", agent_id=agent, role=role, text=text,
                     created_at=T0 + timedelta(seconds=i))


class RecordingLLM:
    """What the indexer asks to embed, answered with a distinct unit vector per call position."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed_vectors(self, texts: list[str], model: str, expected_dim: int,
                            background: bool) -> list[np.ndarray]:
        assert background  # recall indexing never competes with the turns
        self.calls.append(texts)
        return [np.eye(expected_dim, dtype=np.float32)[len(self.calls) * 10 + i] for i in range(len(texts))]


async def test_each_conversational_message_is_embedded_once_and_alone() -> None:
    docs = [doc(0, "user", "my dog is called Biscuit"),
            doc(1, "assistant", "thinking\nBiscuit is a lovely name"),
            doc(2, "tool", '{"status": "OK", "message": "None", "time": "..."}'),
            doc(3, "system", '{"type": "heartbeat", "reason": "..."}'),
            doc(4, "user", "   "),
            doc(5, "user", "we walk him every morning")]
    assert [needs_meaning(d) for d in docs] == [True, True, False, False, False, True]
    llm = RecordingLLM()
    indexer = RecallIndexer(js=None, backend=None, llm=llm, models=None)  # type: ignore[arg-type]
    vectors = await indexer._vectors(docs, "m", 64)
    assert llm.calls == [["my dog is called Biscuit", "thinking\nBiscuit is a lovely name",
                          "we walk him every morning"]]
    assert vectors[2] is None and vectors[3] is None and vectors[4] is None
    first, second, last = (np.array(vectors[i]) for i in (0, 1, 5))
    assert np.allclose([np.linalg.norm(v) for v in (first, second, last)], 1.0, atol=1e-5)
    own = np.eye(64)[10:13]
    # Each vector is mostly the message's own, with some of each neighbour's (conversation only).
    assert first @ own[0] > 0.9 and 0.2 < first @ own[1] < 0.4 and abs(first @ own[2]) < 1e-6
    assert second @ own[1] > 0.9 and second @ own[0] > 0.2 and second @ own[2] > 0.2
    # The agent's next batch has the last conversational message as neighbour before.
    nxt = await indexer._vectors([doc(6, "tool", "{}"), doc(7, "assistant", "He sounds happy")], "m", 64)
    assert nxt[0] is None and llm.calls[-1] == ["He sounds happy"]
    assert np.array(nxt[1]) @ own[2] > 0.2
    # Another agent's messages are not its neighbours.
    other = await indexer._vectors([doc(8, "user", "hello", agent="a2")], "m", 64)
    assert np.allclose(np.array(other[0]), np.eye(64)[30])


def test_contextual_vectors_of_one_message_is_its_own() -> None:
    v = np.eye(4, dtype=np.float32)[:1]
    assert np.allclose(contextual_vectors(v), v)
    assert np.allclose(contextual_vectors(v, before=np.eye(4, dtype=np.float32)[1]) @ np.eye(4)[0],
                       1 / np.sqrt(1 + NEIGHBOUR_MIX**2))


def test_embedder_cache_changes_nothing_but_the_work() -> None:
    texts = ["hello world", "a longer sentence about cats and dogs", "hello world", "short"]
    cached, uncached = LocalEmbedder(cache_size=3), LocalEmbedder(cache_size=0)
    a, n = cached.embed(texts)
    b, m = uncached.embed(texts)
    assert a.shape == (4, 384) and n == m > 0
    assert np.allclose(a, b, atol=1e-6) and np.allclose(a[0], a[2])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    again, n2 = cached.embed(["short", "a longer sentence about cats and dogs"])  # from the cache
    assert np.allclose(again, a[[3, 1]], atol=1e-6) and n2 == sum(uncached.embed([t])[1] for t in texts[1::2])
    cached.embed(["one more text"])
    assert len(cached._cache) == 3  # bounded
    assert len(uncached._cache) == 0


async def test_embed_async_matches_embed() -> None:
    emb = LocalEmbedder(cache_size=0)
    a, n = await emb.embed_async(["the cello is a beautiful instrument"])
    b, m = emb.embed(["the cello is a beautiful instrument"])
    assert n == m and np.allclose(a, b, atol=1e-6)


def test_bulky_chat_fields_skip_the_sdk_transform() -> None:
    provider = OpenAIProvider(ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", api_key="k"))
    tools = [{"type": "function", "function": {"name": "send_message", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "hi"}]
    args = provider._create_args(ChatCall(model="m", messages=messages, tools=tools, tool_choice="send_message",
                                          max_tokens=10))
    assert args["messages"] == [] and args["model"] == "m" and args["max_tokens"] == 10
    assert args["extra_body"] == {"messages": messages, "tools": tools, "tool_choice": {
        "type": "function", "function": {"name": "send_message"}}}


def _queue() -> list[common_pb2.Message]:
    return [common_pb2.Message(id="m1", role="user", text="hello", created_at="2026-03-02T09:00:00Z"),
            common_pb2.Message(id="m2", role="assistant", text="", tool_calls=[common_pb2.ToolCall(
                id="c1", name="send_message", arguments='{"message": "hi there"}')]),
            common_pb2.Message(id="m3", role="tool", text='{"status": "OK"}', tool_call_id="c1",
                               name="send_message"),
            common_pb2.Message(role="system", text='{"type": "heartbeat"}')]  # no id: never cached


def test_step_request_from_cached_wire_entries_equals_one_built_message_by_message() -> None:
    cache = RenderCache(size=3)
    queue = _queue()
    asm = Assembled(system_text="sys", system_tokens=1, tools_tokens=0, queue=queue[:3], queue_tokens=[1] * 3,
                    inputs=queue[3:], input_tokens=[1], base_tokens=0)

    def expected() -> llm_pb2.ChatRequest:
        return llm_pb2.ChatRequest(model="m", purpose="agent", prompt_tokens=9, messages=[
            llm_pb2.ChatMessage(role="system", content="sys"),
            *(to_chat_message(chat_dict(m), m) for m in queue)])

    for _ in range(2):  # cold, then from the cache
        assert asm.chat_request(cache, model="m", purpose="agent", prompt_tokens=9) == expected()
    # A reply rewritten in place (same id, new arguments) is rendered again, not served stale.
    queue[1].tool_calls[0].arguments = '{"message": "corrected"}'
    got = asm.chat_request(cache, model="m", purpose="agent", prompt_tokens=9)
    assert got == expected() and "corrected" in got.messages[2].tool_calls[0].arguments
    assert cache._entry.cache_info().currsize == 3  # bounded


def test_proxy_message_dicts_are_cached_by_content() -> None:
    dicts = MessageDicts(size=2)
    m = llm_pb2.ChatMessage(role="assistant", content="", tool_calls=[common_pb2.ToolCall(
        id="c1", name="send_message", arguments='{"message": "a"}')])
    first = dicts.get(m)
    assert first[0] == message_dict(m) and orjson.loads(first[1]) == first[0]
    assert dicts.get(llm_pb2.ChatMessage.FromString(m.SerializeToString())) is first
    m.tool_calls[0].arguments = '{"message": "b"}'
    assert dicts.get(m)[0]["tool_calls"][0]["function"]["arguments"] == '{"message": "b"}'
    dicts.get(llm_pb2.ChatMessage(role="user", content="x"))
    assert dicts._encoded.cache_info().currsize == 2  # bounded: the least recently used entry went


def test_body_joined_from_cached_message_json_is_the_same_request() -> None:
    provider = OpenAIProvider(ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", api_key="k"))
    req = llm_pb2.ChatRequest(model="m", max_tokens=50, tools=[llm_pb2.Tool(name="send_message")], messages=[
        llm_pb2.ChatMessage(role="system", content="sys \u00e9\u2603"),
        llm_pb2.ChatMessage(role="assistant", tool_calls=[common_pb2.ToolCall(id="c", name="send_message",
                                                                             arguments='{"message": "x"}')]),
        llm_pb2.ChatMessage(role="tool", content='{"status": "OK"}', tool_call_id="c", name="send_message")])
    call = chat_call(req)
    kw = provider._kwargs(call)
    assert len(call.messages_json) == 3 and orjson.loads(json_body(kw, call)) == orjson.loads(orjson.dumps(kw))
    # Messages the provider rewrote (legacy functions form) are encoded from what it sends, not the cache.
    legacy = OpenAIProvider(ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", api_key="k",
                                           legacy_functions=True))
    kw = legacy._kwargs(call)
    assert orjson.loads(json_body(kw, call))["messages"][1]["function_call"]["name"] == "send_message"


def test_the_chat_path_takes_its_proxy_from_the_environment_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mnemo.llm_proxy.providers.openai_provider import _env_proxy

    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxy, auth = _env_proxy("http://llm.example:8000/v1/chat/completions")
    assert proxy == "http://proxy.internal:3128" and auth is not None and auth.login == "user"
    monkeypatch.setenv("NO_PROXY", "llm.example")
    assert _env_proxy("http://llm.example:8000/v1/chat/completions") == (None, None)
    provider = OpenAIProvider(ProviderConfig(name="p", base_url="http://other.example/v1", api_key="k"))
    assert provider._proxy == "http://proxy.internal:3128"
    assert provider._headers["Authorization"] == "Bearer k"
