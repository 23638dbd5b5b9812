"""Two tenants on one stack for isolation tests: A owns a furnished agent (memory, archival passages,
a document, a checkpoint, a completed turn with events, templates, an export, then a turn paused on a
client-side tool's call) and an MCP server with a secret header; B has its own key and an agent of
its own. `snapshot_a` is everything A can see, to compare before and after B's attempts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from mnemo.gateway.options import GatewayOptions
from tests.fixtures_stack import Stack, StackRunner, Tenant
from tests.helpers import eventually

# Markers in A's data: none may ever appear in an answer to B.
SECRETS = ("SECRET-PERSONA-A", "SECRET-HUMAN-A", "SECRET-PASSAGE-A", "SECRET-DOC-A", "SECRET-MESSAGE-A",
           "SECRET-TEMPLATE-A", "SECRET-HEADER-A", "SECRET-ARGUMENT-A", "SECRET-BLOCK-A")


@dataclass
class World:
    stack: Stack
    a: Tenant
    b: Tenant
    agent: str            # A's agent
    b_agent: str          # B's own agent
    passage: str
    checkpoint: str
    turn: str
    message: str          # a message id in A's agent's queue
    idempotency_key: str  # the key of A's completed turn
    template: str         # the name of A's persona and human templates
    export: bytes         # A's export
    pending_call: str     # the call A's agent's paused turn waits on
    server: str           # A's MCP server
    block: str            # A's shared block, attached to A's agent


@pytest.fixture(scope="module")
async def isolation_stack(nats_url: str, scripted_llm_server: Any,
                          tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    options = GatewayOptions(local_bootstrap=False, rate_per_second=100_000, rate_burst=100_000,
                             turn_timeout=20.0, sse_keepalive=1.0)
    runner = StackRunner(nats_url, tmp_path_factory.mktemp("isolation"), scripted_llm_server, options=options)
    yield await runner.start()
    await runner.stop()


async def build_world(stack: Stack) -> World:
    a = await stack.new_tenant("tenant-a")
    b = await stack.new_tenant("tenant-b")
    agent = (await stack.create_agent(a.api_key, name="a-agent", persona="SECRET-PERSONA-A",
                                      human="SECRET-HUMAN-A"))["id"]
    b_agent = (await stack.create_agent(b.api_key, name="b-agent"))["id"]
    template = "a-template"
    key = "a-turn-key"
    async with stack.http(a.api_key) as http:
        r = await http.post(f"/v1/agents/{agent}/archival", json={"text": "SECRET-PASSAGE-A about comets"})
        assert r.status_code == 201, r.text
        passage = r.json()["ids"][0]
        r = await http.post(f"/v1/agents/{agent}/documents", params={"filename": "a.txt"},
                            content=b"SECRET-DOC-A: the tide tables.", headers={"Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "SECRET-MESSAGE-A hello"},
                            headers={"Idempotency-Key": key})
        assert r.status_code == 200 and r.json()["stop_reason"] == "end_turn", r.text
        turn = r.json()["turn_id"]
        r = await http.post(f"/v1/agents/{agent}/checkpoints", json={"name": "a-checkpoint"})
        assert r.status_code == 201, r.text
        checkpoint = r.json()["id"]
        for kind in ("personas", "humans"):
            r = await http.post(f"/v1/{kind}", json={"name": template, "text": "SECRET-TEMPLATE-A"})
            assert r.status_code == 201, r.text
        r = await http.post("/v1/mcp-servers", json={"name": "a-tools", "transport": "http",
                                                     "url": "http://127.0.0.1:1/mcp",
                                                     "headers": {"Authorization": "SECRET-HEADER-A"}})
        assert r.status_code == 201, r.text
        server = r.json()["id"]
        stack.scripted_llm.push({"tool_call": {"name": "lookup", "arguments": {"key": "SECRET-ARGUMENT-A"}}})
        r = await http.post(f"/v1/agents/{agent}/messages", json={"message": "look it up", "tools": [{
            "name": "lookup", "parameters": {"type": "object", "properties": {"key": {"type": "string"}}}}]})
        assert r.status_code == 200 and r.json()["stop_reason"] == "paused", r.text
        pending_call = next(e["call_id"] for e in r.json()["events"] if e["type"] == "tool_call_requested")
        r = await http.get(f"/v1/agents/{agent}/export")
        assert r.status_code == 200
        export = r.content
        r = await http.post("/v1/blocks", json={"label": "project", "value": "SECRET-BLOCK-A plans"})
        assert r.status_code == 201, r.text
        block = r.json()["id"]
        r = await http.post(f"/v1/agents/{agent}/blocks/{block}")
        assert r.status_code == 200, r.text

        async def recall_indexed() -> bool:  # the turn's messages reach recall shortly after it
            agent_json = (await http.get(f"/v1/agents/{agent}")).json()
            total = (await http.get(f"/v1/agents/{agent}/recall")).json()["total"]
            return bool(total) and total == agent_json["counts"]["recall"]
        await eventually(recall_indexed, message="A's turn indexed in recall")
    queue = json.loads(export)["state"]["queue"]
    assert queue, "the completed turn left messages in the queue"
    return World(stack, a, b, agent, b_agent, passage, checkpoint, turn, queue[-1]["id"], key, template, export,
                 pending_call, server, block)


async def snapshot_a(w: World) -> dict[str, Any]:
    """Everything tenant A can read of its own resources."""
    async with w.stack.http(w.a.api_key) as http:
        base = f"/v1/agents/{w.agent}"

        async def get(url: str, **params: Any) -> Any:
            r = await http.get(url, params=params)
            assert r.status_code == 200, (url, r.status_code, r.text)
            return r.json()
        archival = await get(f"{base}/archival", page_size=100)
        return {
            "agent": await get(base),
            "memory": await get(f"{base}/memory"),
            "archival": sorted((h["passage"]["id"], h["passage"]["text"]) for h in archival["hits"]),
            "recall_total": (await get(f"{base}/recall"))["total"],
            "checkpoints": await get(f"{base}/checkpoints"),
            "events": [(e["seq"], e["type"]) for e in (await get(f"{base}/events"))["events"]],
            "agents": sorted(x["id"] for x in (await get("/v1/agents", page_size=100))["agents"]),
            "personas": await get(f"/v1/personas/{w.template}"),
            "humans": await get(f"/v1/humans/{w.template}"),
            "pending": await get(f"{base}/pending-calls"),
            "servers": await get("/v1/mcp-servers"),
            "blocks": await get("/v1/blocks"),
            "block_agents": await get(f"/v1/blocks/{w.block}/agents"),
        }


def leaks(text: str, w: World, ids: bool = False) -> list[str]:
    """A's secrets (and with `ids`, A's ids: for answers B's request did not name them in) in `text`."""
    found = [s for s in SECRETS if s in text]
    if ids:
        found += [i for i in (w.agent, w.passage, w.checkpoint, w.turn, w.message, w.pending_call, w.server,
                              w.block) if i in text]
    return found
