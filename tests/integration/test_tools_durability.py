"""A paused turn survives restarts: the orchestrator and the gateway are replaced while a client-side
call is pending (and a message is queued behind it); then the result arrives and the turn completes
exactly once, the queued message runs after it, and no history holds a call without its return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from mnemo.common.config import Settings
from mnemo.gateway.server import GatewayService
from mnemo.orchestrator.server import OrchestratorService
from tests.fixtures_stack import ADMIN_KEY, StackRunner
from tests.helpers import eventually
from tests.integration.test_tools_client import WEATHER, call, of, reply


async def _replace(runner: StackRunner, old: Any, new: Any) -> None:
    runner.started[runner.started.index(old)] = new
    await new.start()


async def test_a_pending_call_survives_orchestrator_and_gateway_restarts(nats_url: str, scripted_llm: Any,
                                                                         tmp_path: Path) -> None:
    runner = StackRunner(nats_url, tmp_path / "stack", scripted_llm)
    stack = await runner.start()
    try:
        agent = (await stack.create_agent(tools=[WEATHER]))["id"]
        scripted_llm.push(call("get_weather", city="Bergen"))
        async with stack.http() as http:
            first = (await http.post(f"/v1/agents/{agent}/messages", json={"message": "Bergen?"})).json()
            assert first["stop_reason"] == "paused"
            call_id = of(first["events"], "tool_call_requested")[0]["call_id"]
            # a message while paused: accepted and queued (its stream is left at once)
            async with http.stream("POST", f"/v1/agents/{agent}/messages/stream",
                                   json={"message": "And tomorrow?"}) as r:
                assert r.status_code == 200
                queued_turn = r.headers["X-Turn-Id"]
        group = stack.llm.settings.rpc_group

        await stack.orchestrator.stop()
        orchestrator = OrchestratorService(Settings(nats_url=nats_url, orchestrator_port=0, rpc_group=group),
                                           memory_target=stack.memory.address, llm_target=stack.llm.address)
        await _replace(runner, stack.orchestrator, orchestrator)
        await stack.gateway.stop()
        gateway = GatewayService(
            Settings(nats_url=nats_url, home=tmp_path / "gateway2", http_port=0, grpc_port=0, admin_key=ADMIN_KEY,
                     rpc_group=group),
            memory_target=stack.memory.address, llm_target=stack.llm.address,
            orchestrator_target=orchestrator.address, options=runner.options)
        await _replace(runner, stack.gateway, gateway)

        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60.0,
                                     headers={"Authorization": f"Bearer {stack.api_key}"}) as http:
            pending = (await http.get(f"/v1/agents/{agent}/pending-calls")).json()
            assert [c["call_id"] for c in pending["calls"]] == [call_id]
            scripted_llm.push(reply("Bergen: rain."), reply("Tomorrow: rain as well."))
            done = (await http.post(f"/v1/agents/{agent}/tool-results", json={"call_id": call_id, "result": "rain"}))
            assert done.status_code == 200 and done.json()["stop_reason"] == "end_turn", done.text
            assert [e["text"] for e in of(done.json()["events"], "assistant_message")] == ["Bergen: rain."]

            async def both_done() -> bool:
                events = (await http.get(f"/v1/agents/{agent}/events")).json()["events"]
                return len(of(events, "turn_completed")) == 2
            await eventually(both_done, timeout=30.0, interval=0.1, message="the queued turn ran")
            events = (await http.get(f"/v1/agents/{agent}/events")).json()["events"]
            completed = of(events, "turn_completed")
            assert [e["turn_id"] for e in completed] == [first["turn_id"], queued_turn]
            assert len([e for e in of(events, "function_return") if e["call_id"] == call_id]) == 1
            assert [e["text"] for e in of(events, "assistant_message")] == ["Bergen: rain.", "Tomorrow: rain as well."]

            state = json.loads((await http.get(f"/v1/agents/{agent}/export")).content)["state"]
            calls = [c["id"] for m in state["queue"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
            returns = [m["tool_call_id"] for m in state["queue"] if m["role"] == "tool"]
            assert sorted(calls) == sorted(returns)  # every call has its return, once
    finally:
        await runner.stop()
