"""Durability and scale: per-agent order across replicas, redelivery mid-turn, a 500-turn soak."""

from __future__ import annotations

import asyncio
import json

from mnemo.tokens import count_chat_tokens
from mnemo.v1 import common_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import (  # noqa: F401
    EventCollector,
    agent_factory,
    chat_llm,
    orchestrator_factory,
    submit_turn,
)
from tests.helpers import eventually


def call(name: str, heartbeat: bool = False, **args: object) -> dict:
    return {"tool_call": {"name": name, "arguments": {**args, "request_heartbeat": heartbeat}}}


async def test_two_replicas_keep_per_agent_order(orchestrator_factory, agent_factory, memory_stub,
                                                 scripted_llm, nc):
    await orchestrator_factory()
    await orchestrator_factory()
    agents = [(await agent_factory()).config.id for _ in range(3)]
    js = nc.jetstream()
    collectors = [await EventCollector(js, "t1", a).__aenter__() for a in agents]
    submitted: dict[str, list[str]] = {a: [] for a in agents}
    for i in range(8):
        for a in agents:
            submitted[a].append(await submit_turn(js, "t1", a, f"{a[-4:]} message {i}"))
    for a, col in zip(agents, collectors, strict=True):
        for turn_id in submitted[a]:
            await col.wait_turn(turn_id, timeout=30)
        # Turns ran one at a time, in arrival order: each turn's events form one contiguous block.
        order = [e.turn_id for e in col.events]
        blocks = [t for i, t in enumerate(order) if i == 0 or order[i - 1] != t]
        assert blocks == submitted[a]
        state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=a))
        users = [m.text for m in state.queue if m.role == "user"]
        assert users == [f"{a[-4:]} message {i}" for i in range(8)]
        await col.__aexit__()


async def test_stopped_replica_mid_turn_is_resumed_by_another(orchestrator_factory, agent_factory,
                                                              memory_stub, scripted_llm, nc):
    first = await orchestrator_factory()
    agent = (await agent_factory()).config.id
    ref = common_pb2.AgentRef(tenant_id="t1", agent_id=agent)
    scripted_llm.push(
        call("core_memory_append", True, label="human", content="Plays chess"),
        {"delay": 5.0, **call("send_message", message="never delivered")},
        call("send_message", message="resumed"),
    )
    js = nc.jetstream()
    async with EventCollector(js, "t1", agent) as events:
        turn_id = await submit_turn(js, "t1", agent, "I play chess")
        # Step 1 is committed; step 2 is waiting on the (slow) model when the replica goes away.
        await eventually(lambda: len(scripted_llm.chat_requests()) >= 2, message="second step started")
        await first.stop()
        await orchestrator_factory()
        result = await events.wait_turn(turn_id, timeout=30)
    assert result.stop_reason == "end_turn" and result.final.turn_completed.steps == 2
    assert result.replies == ["resumed"]
    ids = [e.id for e in result.events]
    assert len(ids) == len(set(ids))
    assert [e.step for e in result.of("function_return")] == [1]
    state = await memory_stub.GetContext(ref)
    turn_msgs = [m for m in state.queue if m.turn_id == turn_id]
    assert [m.role for m in turn_msgs] == ["user", "assistant", "tool", "system", "assistant", "tool"]
    assert [m.step for m in turn_msgs] == [1, 1, 1, 2, 2, 2]
    human = next(b.value for b in state.blocks if b.label == "human")
    assert human.count("Plays chess") == 1


async def test_soak_500_turns_never_exceed_a_2048_token_window(orchestrator_factory, agent_factory,
                                                               memory_stub, scripted_llm, nc):
    await orchestrator_factory()
    window = 2048
    limits = common_pb2.AgentLimits(reserved_completion_tokens=256, keep_last_messages=3)
    agents = [(await agent_factory(context_window=window, limits=limits)).config.id for _ in range(5)]
    js = nc.jetstream()

    async def drive(agent: str, n: int) -> list[str]:
        stops = []
        async with EventCollector(js, "t1", agent) as events:
            for i in range(n):
                text = f"turn {i} of {agent[-4:]}: " + "tell me more about the weather and rivers " * (1 + i % 4)
                turn_id = await submit_turn(js, "t1", agent, text)
                r = await events.wait_turn(turn_id, timeout=60)
                stops.append(r.stop_reason)
        return stops

    results = await asyncio.gather(*(drive(a, 100) for a in agents))
    assert all(s == "end_turn" for stops in results for s in stops), results
    requests = scripted_llm.chat_requests()
    assert len(requests) >= 500
    worst = 0
    for r in requests:
        tools = r.get("tools") or None
        used = count_chat_tokens(r["model"], r["messages"], tools) + (r.get("max_tokens") or 0)
        worst = max(worst, used)
        assert used <= window, json.dumps(r)[:500]
    summaries = [r for r in requests if not r.get("tools")]
    assert summaries, "the soak should have compacted"
    for a in agents:
        state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=a))
        assert state.recall_count >= 300 and state.evicted_total > 0


async def test_killed_replica_process_mid_turn(private_nats, llm_service, orchestrator_factory,
                                               scripted_llm, tmp_path):
    """kill -9 of an orchestrator process during a step: after ack_wait and the lease TTL another
    replica resumes the turn from the last committed step."""
    import os
    import signal
    import subprocess
    import sys

    from mnemo.common.natsutil import connect, ensure_jetstream
    from mnemo.memory.server import MemoryService
    from mnemo.v1 import memory_pb2, memory_pb2_grpc
    from tests.fixtures_memory import memory_settings
    from tests.helpers import ENV_BASE

    memory = MemoryService(memory_settings(private_nats.url, tmp_path / "mem"), llm_target=llm_service.address)
    await memory.start()
    client = await connect(private_nats.url, "kill-test")
    await ensure_jetstream(client.jetstream())
    env = {**ENV_BASE, "MNEMO_NATS_URL": private_nats.url, "MNEMO_MEMORY_ADDR": memory.address,
           "MNEMO_LLM_ADDR": llm_service.address, "MNEMO_ORCHESTRATOR_PORT": "0",
           "MNEMO_ORCHESTRATOR_ACK_WAIT": "2", "MNEMO_ORCHESTRATOR_LEASE_TTL": "2",
           "MNEMO_LOG_LEVEL": "WARNING", "OTEL_TRACES_EXPORTER": "none"}
    # The orchestrator process under test (to be killed); spawning it blocks only for the fork.
    proc = subprocess.Popen([sys.executable, "-m", "mnemo.orchestrator"], env=env,  # noqa: ASYNC220
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "orch.log", "wb"))  # noqa: ASYNC230
    from mnemo.common.grpcutil import client_channel
    channel = client_channel(memory.address)
    stub = memory_pb2_grpc.MemoryServiceStub(channel)
    try:
        agent = (await stub.CreateAgent(memory_pb2.CreateAgentRequest(
            tenant_id="t1", config=common_pb2.AgentConfig(model="gpt-4o-mini")))).config.id
        scripted_llm.push(call("archival_memory_insert", True, content="Plays chess on Sundays"),
                          {"delay": 60.0, **call("send_message", message="never delivered")},
                          call("send_message", message="resumed after a crash"))
        js = client.jetstream()
        async with EventCollector(js, "t1", agent) as events:
            turn_id = await submit_turn(js, "t1", agent, "I play chess")
            await eventually(lambda: len(scripted_llm.chat_requests()) >= 2, timeout=30,
                             message="the process reached step 2")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            await orchestrator_factory(nats_url=private_nats.url, memory_target=memory.address,
                                       orchestrator_ack_wait=2, orchestrator_lease_ttl=2)
            result = await events.wait_turn(turn_id, timeout=30)
        assert result.stop_reason == "end_turn" and result.replies == ["resumed after a crash"]
        state = await stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent))
        turn_msgs = [m for m in state.queue if m.turn_id == turn_id]
        assert [(m.role, m.step) for m in turn_msgs] == [
            ("user", 1), ("assistant", 1), ("tool", 1), ("system", 2), ("assistant", 2), ("tool", 2)]
        assert state.archival_count == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        await channel.close()
        await client.drain()
        await memory.stop()
