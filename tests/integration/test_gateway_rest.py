"""REST contract of the gateway over the real stack: agents, turns, idempotency, SSE and resume, memory."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.fixtures_stack import Stack, module_stack  # noqa: F401
from tests.helpers import eventually


async def _agent(stack: Stack, **body: Any) -> str:
    return (await stack.create_agent(persona="I am a test persona.", human="A tester.", **body))["id"]


def _two_replies() -> list[dict[str, Any]]:
    return [
        {"content": "Let me answer twice.",
         "tool_call": {"name": "send_message", "arguments": {"message": "first", "request_heartbeat": True}}},
        {"tool_call": {"name": "send_message", "arguments": {"message": "second", "request_heartbeat": False}}},
    ]


# ---- agents -------------------------------------------------------------------------------------------

async def test_agent_crud(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        r = await http.post("/v1/agents", json={"name": "crud", "persona": "p-text", "human": "h-text",
                                                "limits": {"max_steps": 3}})
        assert r.status_code == 201, r.text
        agent = r.json()
        assert agent["id"].startswith("agent-") and agent["name"] == "crud"
        assert {b["label"]: b["value"] for b in agent["blocks"]} == {"persona": "p-text", "human": "h-text"}
        assert agent["limits"]["max_steps"] == 3

        r = await http.get(f"/v1/agents/{agent['id']}")
        assert r.status_code == 200 and r.json()["id"] == agent["id"]

        r = await http.patch(f"/v1/agents/{agent['id']}", json={"name": "renamed", "context_window": 4096})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "renamed" and r.json()["context_window"] == 4096

        r = await http.get("/v1/agents", params={"page": 1, "page_size": 100})
        assert r.status_code == 200
        listed = r.json()
        assert agent["id"] in [a["id"] for a in listed["agents"]] and listed["total"] >= 1

        assert (await http.delete(f"/v1/agents/{agent['id']}")).status_code == 204
        assert (await http.get(f"/v1/agents/{agent['id']}")).status_code == 404
        assert (await http.delete(f"/v1/agents/{agent['id']}")).status_code == 404


async def test_unknown_agent_is_404_and_bad_ids_never_500(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        for agent_id in ("agent-doesnotexist", "has.dot", "x" * 100, "%20"):
            r = await http.get(f"/v1/agents/{agent_id}")
            assert r.status_code == 404, (agent_id, r.status_code, r.text)
            r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "hi"})
            assert r.status_code == 404, (agent_id, r.text)


async def test_validation_errors_name_field_paths(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        r = await http.post("/v1/agents", json={"name": "v", "limits": {"max_steps": -1}})
        assert r.status_code == 422
        assert ["body", "limits", "max_steps"] in [e["loc"] for e in r.json()["detail"]]
        r = await http.post("/v1/agents", json={"name": "v", "unknown_field": 1})
        assert r.status_code == 422
        assert ["body", "unknown_field"] in [e["loc"] for e in r.json()["detail"]]
        agent_id = await _agent(module_stack)
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={})
        assert r.status_code == 422 and ["body", "message"] in [e["loc"] for e in r.json()["detail"]]
        r = await http.post(f"/v1/agents/{agent_id}/messages", content=b"{not json",
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        r = await http.get("/v1/agents", params={"page_size": 0})
        assert r.status_code == 422 and ["query", "page_size"] in [e["loc"] for e in r.json()["detail"]]


# ---- turns --------------------------------------------------------------------------------------------

async def test_send_message_returns_the_turn(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "hello there"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["turn_id"] and body["stop_reason"] == "end_turn"
    types = [e["type"] for e in body["events"]]
    assert types[-1] == "turn_completed"
    replies = [e for e in body["events"] if e["type"] == "assistant_message"]
    assert [e["text"] for e in replies] == ["You said: hello there"]
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > 0
    for event in body["events"]:
        assert event["turn_id"] == body["turn_id"] and event["created_at"]
    assert body["usage"]["total_tokens"] > 0


async def test_idempotency_key_runs_one_turn(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    headers = {"Idempotency-Key": "retry-me-1"}
    async with module_stack.http() as http:
        first = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "once"}, headers=headers)
        second = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "once"}, headers=headers)
        other = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "twice"},
                                headers={"Idempotency-Key": "retry-me-2"})
        recall = await http.get(f"/v1/agents/{agent_id}/events", params={"after": 0})
    assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
    assert first.json()["turn_id"] == second.json()["turn_id"]
    assert [e["seq"] for e in first.json()["events"]] == [e["seq"] for e in second.json()["events"]]
    assert other.json()["turn_id"] != first.json()["turn_id"]
    # The model was asked once per distinct turn: the repeat ran nothing.
    user_calls = [r for r in scripted_llm.chat_requests() if r.get("tools")]
    assert len(user_calls) == 2
    completed = [e for e in recall.json()["events"] if e["type"] == "turn_completed"]
    assert len(completed) == 2


async def test_multi_step_turn_events(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    scripted_llm.push(*_two_replies())
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "go"})
    body = r.json()
    assert [e["text"] for e in body["events"] if e["type"] == "assistant_message"] == ["first", "second"]
    assert "inner_thought" in [e["type"] for e in body["events"]]


async def _sse_events(http: httpx.AsyncClient, method: str, url: str, limit: int | None = None,
                      **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with aconnect_sse(http, method, url, **kwargs) as source:
        assert source.response.status_code == 200, await source.response.aread()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            data = json.loads(sse.data)
            assert sse.event == data["type"] and int(sse.id) == data["seq"]
            out.append(data)
            if limit is not None and len(out) >= limit:
                break
    return out


async def test_sse_stream_then_resume_after_disconnect(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    scripted_llm.push(*_two_replies())
    async with module_stack.http() as http:
        head = await _sse_events(http, "POST", f"/v1/agents/{agent_id}/messages/stream",
                                 limit=2, json={"message": "stream please"})
        assert len(head) == 2
        turn_id = head[0]["turn_id"]
        # Reconnect after the last seen sequence: exactly the rest, ending at turn_completed.
        rest = await _sse_events(http, "GET", f"/v1/agents/{agent_id}/events",
                                 params={"after": head[-1]["seq"], "turn_id": turn_id, "follow": "true"})
        assert rest[-1]["type"] == "turn_completed"
        full = (await http.get(f"/v1/agents/{agent_id}/events", params={"after": 0, "turn_id": turn_id})).json()
        assert [e["seq"] for e in head + rest] == [e["seq"] for e in full["events"]]
        assert [e["text"] for e in head + rest if e["type"] == "assistant_message"] == ["first", "second"]

        # Last-Event-ID resumes the same way.
        again = await _sse_events(http, "GET", f"/v1/agents/{agent_id}/events",
                                  params={"turn_id": turn_id, "follow": "true"},
                                  headers={"Last-Event-ID": str(head[0]["seq"])})
        assert [e["seq"] for e in again] == [e["seq"] for e in full["events"][1:]]


async def test_events_of_an_agent_without_events(module_stack: Stack) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        r = await http.get(f"/v1/agents/{agent_id}/events", params={"after": 0})
    assert r.status_code == 200 and r.json() == {"events": []}


# ---- memory routes ------------------------------------------------------------------------------------

async def test_core_memory_routes(module_stack: Stack) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        r = await http.get(f"/v1/agents/{agent_id}/memory")
        assert r.status_code == 200
        assert {b["label"] for b in r.json()["blocks"]} >= {"persona", "human"}
        r = await http.put(f"/v1/agents/{agent_id}/memory/human", json={"value": "Name: Ada"})
        assert r.status_code == 200 and r.json()["value"] == "Name: Ada"
        r = await http.get(f"/v1/agents/{agent_id}/memory/human")
        assert r.status_code == 200 and r.json()["value"] == "Name: Ada"
        assert (await http.get(f"/v1/agents/{agent_id}/memory/nope")).status_code == 404
        r = await http.put(f"/v1/agents/{agent_id}/memory/human", json={"value": "x" * 5000})
        assert r.status_code in (400, 409, 422), r.text


async def test_archival_and_recall_routes(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/archival", json={"text": "The beagle is named Biscuit.",
                                                                      "tags": ["pets"]})
        assert r.status_code == 201, r.text
        [passage_id] = r.json()["ids"]
        r = await http.post(f"/v1/agents/{agent_id}/archival",
                            json={"passages": [{"text": "Ada likes tea."}, {"text": "Ada lives in Lyon."}]})
        assert r.status_code == 201 and len(r.json()["ids"]) == 2
        r = await http.get(f"/v1/agents/{agent_id}/archival", params={"query": "beagle", "tags": ["pets"]})
        assert r.status_code == 200, r.text
        assert [h["passage"]["id"] for h in r.json()["hits"]] == [passage_id]
        assert (await http.delete(f"/v1/agents/{agent_id}/archival/{passage_id}")).status_code == 204
        r = await http.get(f"/v1/agents/{agent_id}/archival", params={"query": "beagle", "tags": ["pets"]})
        assert r.json()["hits"] == []
        r = await http.post(f"/v1/agents/{agent_id}/archival", json={})
        assert r.status_code == 422

        r = await http.post(f"/v1/agents/{agent_id}/recall", json={"messages": [
            {"role": "user", "text": "we adopted a beagle", "created_at": "2024-05-01T10:00:00Z"},
            {"role": "assistant", "text": "how lovely", "created_at": "2024-05-01T10:00:05Z"}]})
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 2

        async def found() -> bool:
            res = await http.get(f"/v1/agents/{agent_id}/recall", params={"query": "beagle"})
            return res.status_code == 200 and any("beagle" in h["message"]["text"] for h in res.json()["hits"])
        await eventually(found, timeout=15, message="imported recall not searchable")

        async def by_date_and_role() -> bool:
            res = await http.get(f"/v1/agents/{agent_id}/recall",
                                 params={"start": "2024-05-01", "end": "2024-05-01", "role": "assistant"})
            assert res.status_code == 200, res.text
            return [h["message"]["text"] for h in res.json()["hits"]] == ["how lovely"]
        await eventually(by_date_and_role, timeout=15, message="date/role filtered recall")
        r = await http.post(f"/v1/agents/{agent_id}/recall", json={"messages": [{"role": "robot", "text": "x"}]})
        assert r.status_code == 422


async def test_documents(module_stack: Stack) -> None:
    agent_id = await _agent(module_stack)
    text = "\n\n".join(f"Paragraph {i}: the lighthouse keeper counted {i} ships." for i in range(40))
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/documents",
                            files={"file": ("notes.txt", text.encode(), "text/plain")})
        assert r.status_code == 201, r.text
        assert r.json()["passages"] >= 1 and r.json()["source_id"]
        r = await http.post(f"/v1/agents/{agent_id}/documents", params={"filename": "raw.md"},
                            content=b"# Title\n\nRaw body upload.", headers={"Content-Type": "text/markdown"})
        assert r.status_code == 201, r.text
        r = await http.get(f"/v1/agents/{agent_id}/archival", params={"query": "lighthouse keeper"})
        assert r.json()["total"] >= 1
        r = await http.post(f"/v1/agents/{agent_id}/documents", content=b"no filename")
        assert r.status_code == 422


async def test_checkpoints_export_import(module_stack: Stack) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/checkpoints", json={"name": "before"})
        assert r.status_code == 201, r.text
        checkpoint = r.json()
        await http.put(f"/v1/agents/{agent_id}/memory/human", json={"value": "changed"})
        r = await http.get(f"/v1/agents/{agent_id}/checkpoints")
        assert checkpoint["id"] in [c["id"] for c in r.json()["checkpoints"]]
        r = await http.post(f"/v1/agents/{agent_id}/checkpoints/{checkpoint['id']}/restore")
        assert r.status_code == 200, r.text
        assert {b["label"]: b["value"] for b in r.json()["blocks"]}["human"] == "A tester."
        r = await http.post(f"/v1/agents/{agent_id}/checkpoints/nope/restore")
        assert r.status_code == 404

        r = await http.get(f"/v1/agents/{agent_id}/export")
        assert r.status_code == 200, r.text
        exported = r.json()
        r = await http.post("/v1/agents/import", content=json.dumps(exported).encode(),
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        assert r.json()["id"] != agent_id
        r = await http.post("/v1/agents/import", content=b"not an export")
        assert 400 <= r.status_code < 500, r.text


async def test_templates(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        r = await http.post("/v1/personas", json={"name": "pirate", "text": "Arr, a pirate."})
        assert r.status_code == 201, r.text
        assert (await http.post("/v1/personas", json={"name": "pirate", "text": "again"})).status_code == 409
        r = await http.get("/v1/personas")
        assert "pirate" in [t["name"] for t in r.json()["templates"]]
        r = await http.put("/v1/personas/pirate", json={"text": "A calmer pirate."})
        assert r.status_code == 200 and r.json()["text"] == "A calmer pirate."
        assert (await http.get("/v1/personas/pirate")).json()["text"] == "A calmer pirate."
        agent = await module_stack.create_agent(persona_name="pirate", human="h")
        assert {b["label"]: b["value"] for b in agent["blocks"]}["persona"] == "A calmer pirate."
        assert (await http.delete("/v1/personas/pirate")).status_code == 204
        assert (await http.get("/v1/personas/pirate")).status_code == 404
        r = await http.post("/v1/humans", json={"name": "ada", "text": "Ada, a mathematician."})
        assert r.status_code == 201
        assert "ada" in [t["name"] for t in (await http.get("/v1/humans")).json()["templates"]]


async def test_health_and_ready(module_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=module_stack.base_url) as http:
        r = await http.get("/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert set(r.json()["services"]) == {"gateway", "memory", "llm-proxy", "orchestrator"}
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200


async def test_healthz_names_the_failing_parts(module_stack: Stack, nats_url: str, tmp_path: Any) -> None:
    from mnemo.common.config import Settings
    from mnemo.gateway.options import GatewayOptions
    from mnemo.gateway.server import GatewayService
    from tests.helpers import refused_port

    # The orchestrator's port stays bound: a bare free port could be handed to this gateway's own
    # gRPC server, whose health service would then answer for the orchestrator.
    with refused_port() as nobody:
        gateway = GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0),
                                 memory_target=module_stack.memory.address, llm_target=module_stack.llm.address,
                                 orchestrator_target=f"127.0.0.1:{nobody}",
                                 options=GatewayOptions(local_bootstrap=False))
        await gateway.start()
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url) as http:
                r = await http.get("/healthz")
                assert r.status_code == 503
                assert r.json()["failing"] == ["orchestrator"]
                assert (await http.get("/readyz")).status_code == 200
        finally:
            await gateway.stop()


async def test_queue_pop_and_rewrite(module_stack: Stack, scripted_llm: Any) -> None:
    agent_id = await _agent(module_stack)
    async with module_stack.http() as http:
        assert (await http.post(f"/v1/agents/{agent_id}/messages", json={"message": "hi"})).status_code == 200
        r = await http.post(f"/v1/agents/{agent_id}/messages/rewrite", json={"text": "Rewritten reply"})
        assert r.status_code == 200, r.text
        assert "Rewritten reply" in json.dumps(r.json())
        before = (await http.get(f"/v1/agents/{agent_id}")).json()["counts"]["queue"]
        r = await http.post(f"/v1/agents/{agent_id}/messages/pop", json={"count": 1})
        assert r.status_code == 200, r.text
        assert len(r.json()["removed"]) >= 1
        after = (await http.get(f"/v1/agents/{agent_id}")).json()["counts"]["queue"]
        assert after == before - len(r.json()["removed"])
        assert (await http.post(f"/v1/agents/{agent_id}/messages/pop", json={"count": 0})).status_code == 422
