"""The whole stack across a NATS server restart: a turn accepted with 202 is never lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from mnemo.gateway.options import GatewayOptions
from tests.fixtures_stack import StackRunner
from tests.helpers import NatsServer, eventually


def say(text: str, delay: float = 0.0) -> dict[str, Any]:
    step: dict[str, Any] = {"tool_call": {"name": "send_message",
                                          "arguments": {"message": text, "request_heartbeat": False}}}
    if delay:
        step["delay"] = delay
    return step


async def _turn_events(http: httpx.AsyncClient, agent_id: str, turn_id: str) -> list[dict[str, Any]]:
    r = await http.get(f"/v1/agents/{agent_id}/events", params={"turn_id": turn_id})
    if r.status_code != 200:
        return []
    body = r.json()
    items = body.get("events", body) if isinstance(body, dict) else body
    return [e for e in items if e.get("turn_id") == turn_id]


async def _wait_completed(http: httpx.AsyncClient, agent_id: str, turn_id: str, timeout: float) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def completed() -> bool:
        try:
            seen[:] = await _turn_events(http, agent_id, turn_id)
        except httpx.HTTPError:
            return False
        return any(e["type"] == "turn_completed" for e in seen)
    await eventually(completed, timeout=timeout, interval=0.25, message=f"turn {turn_id} never completed")
    return seen


async def test_turns_survive_a_nats_restart(private_nats: NatsServer, scripted_llm: Any, tmp_path: Path) -> None:
    runner = StackRunner(private_nats.url, tmp_path / "stack", scripted_llm,
                         options=GatewayOptions(local_bootstrap=False, turn_timeout=0.2))
    stack = await runner.start()
    try:
        agent_id = (await stack.create_agent())["id"]
        async with stack.http(timeout=30) as http:
            # A turn in flight while NATS goes away: the model answers after the restart.
            scripted_llm.push(say("before the restart", delay=1.5))
            r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "first"})
            assert r.status_code == 202, r.text
            first = r.json()["turn_id"]
            private_nats.restart()

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False
            await eventually(ready, timeout=30, interval=0.2, message="stack not ready after the restart")
            events = await _wait_completed(http, agent_id, first, timeout=60)
            assert [e["text"] for e in events if e["type"] == "assistant_message"] == ["before the restart"]

            # A turn submitted right after the restart completes too.
            scripted_llm.push(say("after the restart"))
            r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "second"})
            assert r.status_code in (200, 202), r.text
            second = r.json()["turn_id"]
            events = await _wait_completed(http, agent_id, second, timeout=60)
            assert [e["text"] for e in events if e["type"] == "assistant_message"] == ["after the restart"]

            # The recall indexer kept consuming the commit log across the restart.
            async def indexed() -> bool:
                r = await http.get(f"/v1/agents/{agent_id}/recall", params={"query": "second"})
                return r.status_code == 200 and any(
                    h["message"]["text"] == "second" for h in r.json()["hits"])
            await eventually(indexed, timeout=60, interval=0.25, message="messages after the restart not in recall")
    finally:
        await runner.stop()
