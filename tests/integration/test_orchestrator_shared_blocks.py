"""Shared blocks through the agent loop: every attached agent's core_memory_append lands (turns of
several agents at once, and user edits beside them), each agent's next step sees the others' edits
with the names of who shares the block, a redone step applies its edit once, and a stale replace is
fed back to the agent."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mnemo.common import rpcclient
from mnemo.common.config import Settings
from mnemo.common.events import EventPublisher
from mnemo.common.grpcutil import client_channel
from mnemo.orchestrator.runner import TurnRunner
from mnemo.v1 import common_pb2, llm_pb2_grpc, memory_pb2, memory_pb2_grpc
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import (  # noqa: F401
    EventCollector,
    agent_factory,
    chat_llm,
    orchestrator,
    run_turn,
    submit_turn,
)


def call(name: str, heartbeat: bool = False, **args: object) -> dict:
    return {"tool_call": {"name": name, "arguments": {**args, "request_heartbeat": heartbeat}}}


async def _shared(memory_stub, agents, label: str = "project", value: str = "", limit: int = 20_000):  # type: ignore[no-untyped-def]
    rec = await memory_stub.CreateSharedBlock(memory_pb2.CreateSharedBlockRequest(
        tenant_id="t1", label=label, value=value, limit=limit))
    for agent in agents:
        await memory_stub.AttachSharedBlock(memory_pb2.AttachSharedBlockRequest(
            ref=common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id), block_id=rec.id))
    return rec


async def test_turns_of_several_agents_at_once_lose_no_edit(orchestrator, agent_factory, memory_stub, scripted_llm,
                                                            nc):
    agents = [await agent_factory(name=f"agent-{i}") for i in range(3)]
    rec = await _shared(memory_stub, agents)
    per_agent = 4
    lines = [f"fact {i}" for i in range(len(agents) * per_agent)]
    scripted_llm.push(*[call("core_memory_append", label="project", content=line) for line in lines])
    js = nc.jetstream()
    collectors = [EventCollector(js, "t1", a.config.id) for a in agents]
    for c in collectors:
        await c.__aenter__()
    try:
        turns = [(c, await submit_turn(js, "t1", a.config.id, f"turn {k}"))
                 for k in range(per_agent) for a, c in zip(agents, collectors, strict=True)]

        async def user_edits() -> None:
            for j in range(4):
                await memory_stub.UpdateBlock(memory_pb2.UpdateBlockRequest(
                    ref=common_pb2.AgentRef(tenant_id="t1", agent_id=agents[j % 3].config.id), label="project",
                    op="append", value=f"user note {j}"))
        results, _ = await asyncio.gather(asyncio.gather(*(c.wait_turn(t, timeout=60) for c, t in turns)),
                                          user_edits())
    finally:
        for c in collectors:
            await c.__aexit__(None, None, None)
    assert all(r.stop_reason == "end_turn" for r in results), [r.stop_reason for r in results]
    value = (await memory_stub.GetSharedBlock(memory_pb2.SharedBlockRef(tenant_id="t1", block_id=rec.id))).value
    assert sorted(value.split("\n")) == sorted(lines + [f"user note {j}" for j in range(4)])
    # no agent carried the shared value in its own state: each reads the block's
    for agent in agents:
        state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=agent.config.id))
        project = next(b for b in state.blocks if b.label == "project")
        assert project.value == value and sorted(project.shared_with) == sorted(
            a.config.name for a in agents if a.config.id != agent.config.id)


async def test_the_next_step_of_another_agent_sees_the_edit(orchestrator, agent_factory, memory_stub, scripted_llm,
                                                            nc):
    ann, bob = await agent_factory(name="ann"), await agent_factory(name="bob")
    await _shared(memory_stub, [ann, bob], value="Kestrel ships in May.")
    scripted_llm.push(call("core_memory_replace", label="project", old_content="May", new_content="June"))
    assert (await run_turn(nc, "t1", ann.config.id, "it slipped")).stop_reason == "end_turn"
    scripted_llm.push(call("send_message", message="noted"))
    await run_turn(nc, "t1", bob.config.id, "when do we ship?")
    system = scripted_llm.chat_requests()[-1]["messages"][0]["content"]
    assert '<project characters="22/20000" shared_with="ann">\nKestrel ships in June.\n</project>' in system
    assert "A block marked\n   shared_with is shared" in system   # the preset explains it
    # bob replaces text ann already changed: the agent is told, and gets a step to read it again
    scripted_llm.push(call("core_memory_replace", label="project", old_content="May", new_content="July"),
                      call("send_message", message="ok"))
    result = await run_turn(nc, "t1", bob.config.id, "move it to July")
    errors = [e.function_return.result for e in result.of("function_return") if e.function_return.status == "error"]
    assert errors and "read it again" in errors[0]
    tool = [m for m in scripted_llm.chat_requests()[-1]["messages"] if m["role"] == "tool"][-1]
    assert "read it again" in json.loads(tool["content"])["message"]


class _LosesFirstCommit:
    """The real memory client; before the first CommitStep reaches memory, a user edits the agent, so
    that commit loses its compare-and-set (a real Conflict from the memory service)."""

    def __init__(self, memory: Any, stub: Any) -> None:
        self.memory, self.stub, self.commits = memory, stub, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.memory, name)

    async def CommitStep(self, request: Any, timeout: float | None = None) -> Any:
        self.commits += 1
        if self.commits == 1:
            await self.stub.UpdateBlock(memory_pb2.UpdateBlockRequest(ref=request.ref, label="human", value="moved"))
        return await self.memory.CommitStep(request, timeout=timeout)


async def test_an_edit_of_a_step_redone_after_a_lost_commit_lands_once(memory_service, agent_factory, memory_stub,
                                                                      chat_llm, scripted_llm, nc):
    """The shared edit is written at once; the step's commit then loses its compare-and-set, the step
    is redone (same step id) and makes the same edit again: it is applied once."""
    ann = await agent_factory(name="ann")
    rec = await _shared(memory_stub, [ann])
    settings = Settings(nats_url="nats://unused", rpc_group=memory_service.settings.rpc_group)
    memory_channel, llm_channel = client_channel(memory_service.address), client_channel(chat_llm)
    memory = _LosesFirstCommit(rpcclient.memory_client(settings, nc, memory_pb2_grpc.MemoryServiceStub(memory_channel)),
                               memory_stub)
    llm = rpcclient.llm_client(settings, nc, llm_pb2_grpc.LLMServiceStub(llm_channel))
    runner = TurnRunner(settings, memory, llm, EventPublisher(nc.jetstream()))
    scripted_llm.push(call("core_memory_append", label="project", content="only once"),
                      call("core_memory_append", label="project", content="only once"))
    turn = common_pb2.TurnRequest(turn_id="turn-redo", tenant_id="t1", agent_id=ann.config.id, message="note it")
    try:
        assert await runner.run(turn, 0, {}) == "end_turn"
    finally:
        await memory_channel.close()
        await llm_channel.close()
    assert memory.commits == 2   # the first lost its compare-and-set, the redone step committed
    value = (await memory_stub.GetSharedBlock(memory_pb2.SharedBlockRef(tenant_id="t1", block_id=rec.id))).value
    assert value == "only once"
    state = await memory_stub.GetContext(common_pb2.AgentRef(tenant_id="t1", agent_id=ann.config.id))
    assert next(b for b in state.blocks if b.label == "human").value == "moved"
