"""`mnemo up` as processes: one turn through REST, SSE, gRPC and the OpenAI-compatible endpoint;
a clean stop with nothing left behind; data surviving a restart."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import httpx
import openai
import pytest

from mnemo.client import AsyncMnemo, Mnemo, NotFoundError
from mnemo.v1 import agent_pb2, agent_pb2_grpc, common_pb2, memory_pb2
from tests.e2e.stack import Stack
from tests.scripted_llm import ScriptedLLM


def _client(stack: Stack) -> Mnemo:
    return Mnemo(base_url=stack.base_url, api_key=stack.api_key)


def test_up_prints_the_endpoints(stack: Stack) -> None:
    out = stack.output()
    assert "Mnemo is up" in out
    for text in (stack.base_url, f"{stack.base_url}/docs", f"{stack.base_url}/ui/", stack.grpc_target,
                 str(stack.home / "api_key")):
        assert text in out, out
    assert stack.api_key


def test_rest_turn_replies_with_ordered_events(stack: Stack, scripted_llm: ScriptedLLM) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    created = httpx.post(f"{stack.base_url}/v1/agents", json={"name": "e2e"}, headers=headers, timeout=30)
    assert created.status_code in (200, 201), created.text
    agent_id = created.json()["id"]

    resp = httpx.post(f"{stack.base_url}/v1/agents/{agent_id}/messages", json={"message": "hello there"},
                      headers=headers, timeout=120)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["turn_id"] and body["stop_reason"] == "end_turn"
    events = body["events"]
    types = [e["type"] for e in events]
    assert "assistant_message" in types and types[-1] == "turn_completed"
    assert types.index("assistant_message") < types.index("turn_completed")
    reply = next(e for e in events if e["type"] == "assistant_message")
    assert reply["text"] == "You said: hello there"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 0
    assert all(e["turn_id"] == body["turn_id"] for e in events)
    assert "usage" in body
    # The model really was called through the llm-proxy with the agent's functions.
    assert any("send_message" in str(r.get("tools")) for r in scripted_llm.chat_requests())


def test_client_stream_and_resume(stack: Stack, scripted_llm: ScriptedLLM) -> None:
    with _client(stack) as client:
        agent = client.agents.create(name="streamer")
        events = list(client.agents.stream_message(agent.id, "stream me"))
        types = [e.type for e in events]
        assert types[-1] == "turn_completed"
        assert [e.text for e in events if e.type == "assistant_message"] == ["You said: stream me"]
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs)
        # Resume: the events after the first one are the rest of the turn, nothing repeated.
        rest = list(client.agents.events(agent.id, after=seqs[0], turn_id=events[0].turn_id))
        assert [e.seq for e in rest] == seqs[1:]
        assert client.agents.get(agent.id).id == agent.id
        with pytest.raises(NotFoundError) as info:
            client.agents.get("agent-doesnotexist")
        assert info.value.status == 404


async def test_async_client_turn(stack: Stack, scripted_llm: ScriptedLLM) -> None:
    async with AsyncMnemo(base_url=stack.base_url, api_key=stack.api_key) as client:
        agent = await client.agents.create(name="async")
        result = await client.agents.send_message(agent.id, "async hello")
        assert result.reply == "You said: async hello"
        streamed = [e async for e in client.agents.stream_message(agent.id, "async stream")]
        assert any(e.type == "assistant_message" and e.text == "You said: async stream" for e in streamed)
        assert streamed[-1].is_final


def test_grpc_agent_service(stack: Stack, scripted_llm: ScriptedLLM) -> None:
    metadata = (("authorization", f"Bearer {stack.api_key}"),)
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        agent = stub.CreateAgent(memory_pb2.CreateAgentRequest(config=common_pb2.AgentConfig(name="grpc-e2e")),
                                 metadata=metadata, timeout=30)
        assert agent.id
        events = list(stub.SendMessage(agent_pb2.SendMessageRequest(agent_id=agent.id, message="hi over grpc"),
                                       metadata=metadata, timeout=120))
        types = [e.type for e in events]
        assert types[-1] == "turn_completed"
        replies = [e.assistant_message.text for e in events if e.type == "assistant_message"]
        assert replies == ["You said: hi over grpc"]
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs)
        # Without the key: refused.
        with pytest.raises(grpc.RpcError) as info:
            stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=agent.id), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The same agent over REST.
        with _client(stack) as client:
            assert client.agents.get(agent.id).name == "grpc-e2e"


def test_openai_compatible_endpoint(stack: Stack, scripted_llm: ScriptedLLM) -> None:
    with _client(stack) as client:
        agent = client.agents.create(name="openai-compat")
    oai = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0, timeout=120)
    completion = oai.chat.completions.create(model=f"agent:{agent.id}",
                                             messages=[{"role": "user", "content": "hi via openai"}])
    assert completion.choices[0].message.content == "You said: hi via openai"


def test_stop_leaves_nothing_and_data_survives_restart(tmp_path: Path, scripted_llm_server: ScriptedLLM,
                                                       scripted_llm: ScriptedLLM) -> None:
    home = tmp_path / "home"
    first = Stack(home, llm_base_url=scripted_llm_server.base_url).start()
    try:
        info = first.stack_info()
        assert set(info["processes"]) == {"nats", "services", "gateway"}  # the core layout, by default
        assert set(info["processes"].values()) <= set(first.child_pids)
        with _client(first) as client:
            agent = client.agents.create(name="durable")
            assert client.agents.send_message(agent.id, "remember me").reply == "You said: remember me"
    finally:
        code = first.stop()
    assert code == 0, first.output()
    assert first.alive_children() == [], f"left behind: {first.alive_children()}"
    assert not (home / "run" / "stack.json").exists()
    assert "Mnemo stopped." in first.output()

    # Started again on the same data, in the split layout: the layout is how processes are laid out,
    # not where data lives.
    second = Stack(home, llm_base_url=scripted_llm_server.base_url)
    second.ports = first.ports
    second.env = {**first.env, "MNEMO_LAYOUT": "split"}
    second.start()
    try:
        assert set(second.stack_info()["processes"]) == {"nats", "memory", "llm-proxy", "orchestrator", "gateway"}
        with _client(second) as client:
            again = client.agents.get(agent.id)
            assert again.name == "durable"
            # Recall is indexed asynchronously from the commit log: poll until it has caught up.
            deadline = time.monotonic() + 30
            while not any("remember me" in h.message.text for h in client.agents.recall(agent.id, "remember").hits):
                assert time.monotonic() < deadline, "recall lost the conversation across the restart"
                time.sleep(0.2)
    finally:
        assert second.stop() == 0
    assert second.alive_children() == []
