"""The gateway across a NATS restart, and turns that outlive the request that submitted them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from mnemo.common.config import Settings
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.server import GatewayService
from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.helpers import NatsServer, eventually


async def test_event_hub_survives_a_nats_restart(private_nats: NatsServer, tmp_path: Path) -> None:
    """The per-process event consumer keeps dispatching after the NATS server restarts."""
    from mnemo.common import subjects
    from mnemo.common.natsutil import connect
    from mnemo.v1 import common_pb2

    gateway = GatewayService(Settings(nats_url=private_nats.url, home=tmp_path, http_port=0, grpc_port=0,
                                      memory_port=1, llm_port=1),
                             options=GatewayOptions(local_bootstrap=False))
    await gateway.start()
    publisher = await connect(private_nats.url, "test-publisher")
    try:
        private_nats.restart()
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200
            await eventually(ready, timeout=20, message="gateway not ready after the NATS restart")
        assert gateway.hub is not None
        waiter = gateway.hub.register("turn-after-restart")
        js = publisher.jetstream()
        event = common_pb2.Event(type="turn_completed", turn_id="turn-after-restart", agent_id="agent-x",
                                 tenant_id="t", turn_completed=common_pb2.TurnCompleted(stop_reason="end_turn"))

        async def delivered() -> bool:
            if not waiter.queue.empty():
                return True
            try:
                await js.publish(subjects.events_subject("t", "agent-x"), event.SerializeToString(), timeout=2)
            except Exception:
                return False
            return not waiter.queue.empty()
        await eventually(delivered, timeout=30, interval=0.5, message="hub got nothing after the restart")
        got = waiter.queue.get_nowait()
        assert got.turn_id == "turn-after-restart" and got.seq > 0
    finally:
        await publisher.close()
        await gateway.stop()


async def test_slow_turn_returns_202_then_events_follow(module_stack: Stack, scripted_llm: Any,
                                                        nats_url: str, tmp_path: Path) -> None:
    gateway = GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0),
                             memory_target=module_stack.memory.address,
                             options=GatewayOptions(turn_timeout=0.3, local_bootstrap=False))
    await gateway.start()
    try:
        agent_id = (await module_stack.create_agent())["id"]
        scripted_llm.push({"delay": 1.5, "tool_call": {"name": "send_message",
                                                       "arguments": {"message": "slow", "request_heartbeat": False}}})
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30,
                                     headers={"Authorization": f"Bearer {module_stack.api_key}"}) as http:
            r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "take your time"})
            assert r.status_code == 202, r.text
            turn_id = r.json()["turn_id"]
            events: list[dict[str, Any]] = []
            async with http.stream("GET", f"/v1/agents/{agent_id}/events",
                                   params={"turn_id": turn_id, "follow": "true"}) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
            assert events[-1]["type"] == "turn_completed"
            assert [e["text"] for e in events if e["type"] == "assistant_message"] == ["slow"]
    finally:
        await gateway.stop()
