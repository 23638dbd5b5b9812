"""The console's API (no browser): the last step's context window, turn timelines, usage over time,
their gRPC twins, trace links, and the console's files served from the package."""

from __future__ import annotations

import fnmatch
import itertools
import re
import tomllib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mnemo.gateway.convert import to_json
from mnemo.gateway.rest_console import UI_DIR
from mnemo.v1 import agent_pb2, console_pb2
from tests.fixtures_observability import span_exporter  # noqa: F401
from tests.fixtures_stack import Stack, StackRunner
from tests.helpers import NatsServer, eventually
from tests.scripted_llm import ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ["system_instructions", "function_schemas", "memory_metadata", "core_memory", "summary",
            "message_queue", "reserved_completion"]


@pytest.fixture(scope="module")
def console_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server of this module: its commit log is indexed by its own memory service alone (the
    recall indexer's durable consumer is shared by every memory service on a server)."""
    server = NatsServer(tmp_path_factory.mktemp("console-nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def module_stack(console_nats: NatsServer, scripted_llm_server: ScriptedLLM,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    runner = StackRunner(console_nats.url, tmp_path_factory.mktemp("console"), scripted_llm_server)
    yield await runner.start()
    await runner.stop()


def _search_then_reply(llm: ScriptedLLM, reply: str = "Noted.") -> None:
    llm.push({"content": "Let me look.", "tool_call": {
                 "name": "conversation_search", "arguments": {"query": "chess", "request_heartbeat": True}}},
             {"tool_call": {"name": "send_message", "arguments": {"message": reply}}})


async def _turn(stack: Stack, agent_id: str, text: str = "I like chess") -> dict[str, Any]:
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": text})
        assert r.status_code == 200 and r.json()["stop_reason"] == "end_turn", r.text
        return r.json()


async def test_the_context_window_of_the_last_step_adds_up(module_stack: Stack, scripted_llm: ScriptedLLM) -> None:
    stack = module_stack
    agent = await stack.create_agent(name="ctx", context_window=20_000,
                                     limits={"reserved_completion_tokens": 700, "memory_warning_fraction": 0.6})
    stub, auth = stack.agent_stub(), stack.grpc_auth()
    async with stack.http() as http:
        r = await http.get(f"/v1/agents/{agent['id']}/context")
        assert r.status_code == 200 and r.json()["available"] is False, r.text
        _search_then_reply(scripted_llm)
        turn = await _turn(stack, agent["id"])
        ctx = (await http.get(f"/v1/agents/{agent['id']}/context")).json()
    assert ctx["available"] and ctx["turn_id"] == turn["turn_id"] and ctx["step"] == 2
    assert [s["name"] for s in ctx["sections"]] == SECTIONS
    tokens = {s["name"]: s["tokens"] for s in ctx["sections"]}
    assert sum(tokens.values()) == ctx["total_tokens"]
    assert ctx["total_tokens"] == ctx["prompt_tokens"] + tokens["reserved_completion"]
    assert tokens["reserved_completion"] == 700 and ctx["context_window"] == 20_000
    assert all(tokens[n] > 0 for n in SECTIONS if n != "summary") and tokens["summary"] == 0
    last_usage = [e for e in turn["events"] if e["type"] == "usage"][-1]
    assert ctx["prompt_tokens"] == last_usage["context_tokens"]     # what the step actually sent
    assert ctx["warning_tokens"] == int(0.6 * (20_000 - 700))
    assert ctx["compaction_tokens"] == int(0.9 * (20_000 - 700))
    twin = await stub.GetContextWindow(agent_pb2.GetAgentRequest(agent_id=agent["id"]), metadata=auth)
    assert to_json(twin) == ctx


async def test_after_a_failed_step_the_context_is_the_last_one_sent(module_stack: Stack,
                                                                     scripted_llm: ScriptedLLM) -> None:
    stack = module_stack
    agent = await stack.create_agent(name="ctx-after-failure")
    base = f"/v1/agents/{agent['id']}"
    first = await _turn(stack, agent["id"])
    scripted_llm.push({"error": {"status": 400, "message": "scripted refusal"}})
    async with stack.http() as http:
        r = await http.post(f"{base}/messages", json={"message": "this one fails"})
        assert r.status_code == 200 and r.json()["stop_reason"] == "error", r.text
        state = (await http.get(f"{base}/export")).json()["state"]
        assert [e["type"] for e in state["pending_events"]] == ["turn_failed"]   # no usage in the last step
        ctx = (await http.get(f"{base}/context")).json()
        turns = (await http.get(f"{base}/turns")).json()["turns"]
    assert ctx["available"] and ctx["turn_id"] == first["turn_id"]
    assert sum(s["tokens"] for s in ctx["sections"]) == ctx["total_tokens"]
    failed = turns[0]
    assert failed["completed"] and failed["stop_reason"] == "error" and "scripted refusal" in failed["error"]
    assert failed["steps"] == [] and turns[1]["turn_id"] == first["turn_id"]


async def test_turn_timelines_time_each_step(module_stack: Stack, scripted_llm: ScriptedLLM) -> None:
    stack = module_stack
    agent = await stack.create_agent(name="timeline")
    base = f"/v1/agents/{agent['id']}"
    stub, auth = stack.agent_stub(), stack.grpc_auth()
    async with stack.http() as http:
        assert (await http.get(f"{base}/turns")).json() == {"turns": []}
        _search_then_reply(scripted_llm)
        first = await _turn(stack, agent["id"])
        later = [(await _turn(stack, agent["id"], f"message {i}"))["turn_id"] for i in range(2)]
        listed = (await http.get(f"{base}/turns", params={"limit": 2})).json()["turns"]
        assert [t["turn_id"] for t in listed] == list(reversed(later))   # newest first
        every = (await http.get(f"{base}/turns", params={"limit": 50})).json()["turns"]
        assert [t["turn_id"] for t in every] == [*reversed(later), first["turn_id"]]
        one = (await http.get(f"{base}/turns/{first['turn_id']}/steps")).json()
        assert one == every[-1]
        assert one["completed"] and one["stop_reason"] == "end_turn" and len(one["steps"]) == 2
        search, reply = one["steps"]
        assert [(f["name"], f["status"]) for f in search["timing"]["functions"]] == [("conversation_search", "ok")]
        assert search["timing"]["functions"][0]["duration_ms"] > 0
        assert search["timing"]["stop_reason"] == "heartbeat" and search["timing"]["finish_reason"] == "tool_calls"
        assert reply["timing"]["stop_reason"] == "end_turn"
        assert [f["name"] for f in reply["timing"]["functions"]] == ["send_message"]
        for step in (search, reply):
            t = step["timing"]
            assert t["model_latency_ms"] > 0 and t["step_ms"] >= t["model_latency_ms"]
            assert step["prompt_tokens"] > 0 and step["completion_tokens"] > 0
            assert step["trace_url"] == ""    # no MNEMO_TRACE_URL here
        assert one["first_seq"] <= search["seq"] < reply["seq"] <= one["last_seq"]

        r = await http.get(f"{base}/turns/turn-that-never-ran/steps")
        assert r.status_code == 404 and "not found" in r.json()["detail"]
        for bad in (0, 51):
            r = await http.get(f"{base}/turns", params={"limit": bad})
            assert r.status_code == 422, r.text
    got = await stub.ListTurns(console_pb2.ListTurnsRequest(agent_id=agent["id"], limit=50), metadata=auth)
    assert to_json(got)["turns"] == every
    got_one = await stub.GetTurn(console_pb2.GetTurnRequest(agent_id=agent["id"], turn_id=first["turn_id"]),
                                 metadata=auth)
    assert to_json(got_one) == one
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTurns(console_pb2.ListTurnsRequest(agent_id=agent["id"], limit=99), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTurn(console_pb2.GetTurnRequest(agent_id=agent["id"], turn_id="nope"), metadata=auth)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_usage_over_time_in_buckets(module_stack: Stack, scripted_llm: ScriptedLLM) -> None:
    stack = module_stack
    agent = await stack.create_agent(name="usage")
    base = f"/v1/agents/{agent['id']}"
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    stub, auth = stack.agent_stub(), stack.grpc_auth()
    async with stack.http() as http:
        empty = (await http.get(f"{base}/usage", params={"since": since, "bucket_seconds": 60})).json()
        assert empty["totals"] == [] and all(b["calls"] == 0 for b in empty["buckets"])
        assert 5 <= len(empty["buckets"]) <= 7 and empty["bucket_seconds"] == 60
        _search_then_reply(scripted_llm)
        await _turn(stack, agent["id"])
        await _turn(stack, agent["id"], "again")   # 2 + 1 model calls

        usage: dict[str, Any] = {}

        def chat_total() -> dict[str, Any]:
            return next((t for t in usage.get("totals", []) if t["model"] == scripted_llm.model), {"calls": 0})

        async def metered() -> bool:  # the llm-proxy meters asynchronously
            usage.update((await http.get(f"{base}/usage", params={"since": since, "bucket_seconds": 60})).json())
            return chat_total()["calls"] >= 3
        await eventually(metered, message="the turns' model calls metered")
        total = chat_total()
        assert total["calls"] == 3, usage["totals"]   # embeddings (searches, recall) are other models' totals
        calls = sum(t["calls"] for t in usage["totals"])
        assert sum(b["calls"] for b in usage["buckets"]) == calls
        assert sum(b["prompt_tokens"] for b in usage["buckets"]) == sum(t["prompt_tokens"] for t in usage["totals"])
        assert total["prompt_tokens"] > 0 and total["agent_id"] == agent["id"]
        starts = [datetime.fromisoformat(b["start"].replace("Z", "+00:00")) for b in usage["buckets"]]
        assert all(b - a == timedelta(seconds=60) for a, b in itertools.pairwise(starts))
        default = (await http.get(f"{base}/usage")).json()
        assert default["bucket_seconds"] == 3600 and sum(b["calls"] for b in default["buckets"]) >= calls

        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        for params, reason in [({"since": "yesterday"}, "RFC 3339"), ({"since": future}, "future"),
                               ({"since": "2001-01-01", "bucket_seconds": 60}, "buckets")]:
            r = await http.get(f"{base}/usage", params=params)
            assert r.status_code == 422 and reason in r.text, (params, r.text)
        assert (await http.get(f"{base}/usage", params={"bucket_seconds": 59})).status_code == 422
    twin = await stub.GetAgentUsage(console_pb2.AgentUsageRequest(agent_id=agent["id"], since=since,
                                                                  bucket_seconds=60), metadata=auth)
    assert sum(b.calls for b in twin.buckets) >= calls
    assert [t.calls for t in twin.totals if t.model == scripted_llm.model] == [3]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAgentUsage(console_pb2.AgentUsageRequest(agent_id=agent["id"], since="soon"), metadata=auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "RFC 3339" in (err.value.details() or "")


async def test_each_step_links_its_trace(module_stack: Stack, scripted_llm: ScriptedLLM,
                                         span_exporter: InMemorySpanExporter) -> None:
    stack = module_stack
    settings = stack.gateway.context.settings
    settings.trace_url = "http://tracing.example/trace/{trace_id}?uiFind=step"
    try:
        agent = await stack.create_agent(name="traced")
        turn = await _turn(stack, agent["id"])
        async with stack.http() as http:
            [tl] = (await http.get(f"/v1/agents/{agent['id']}/turns")).json()["turns"]
    finally:
        settings.trace_url = ""
    assert tl["turn_id"] == turn["turn_id"]
    step_traces = {format(s.context.trace_id, "032x") for s in span_exporter.get_finished_spans()
                   if s.name == "orchestrator.step"}
    [step] = tl["steps"]
    trace_id = step["timing"]["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id in step_traces
    assert step["trace_url"] == f"http://tracing.example/trace/{trace_id}?uiFind=step"


async def test_the_console_is_served_from_the_package_with_no_outside_resources(module_stack: Stack) -> None:
    async with module_stack.http(api_key="") as http:   # no key needed to load the console itself
        r = await http.get("/ui", follow_redirects=False)
        assert r.status_code in (307, 308) and r.headers["location"].endswith("/ui/")
        page = await http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        files = sorted(p.relative_to(UI_DIR).as_posix() for p in UI_DIR.rglob("*") if p.is_file())
        assert "index.html" in files and "style.css" in files and "js/app.js" in files
        for name in files:
            r = await http.get(f"/ui/{name}")
            assert r.status_code == 200, name
            text = r.text
            # Nothing from another origin: no absolute URLs in src/href/imports.
            assert not re.search(r"""(src|href)=["'](https?:)?//""", text), name
            assert not re.search(r"""(import|from)\s*\(?["'](https?:)?//""", text), name
            for imported in re.findall(r"""from\s+["'](\.[^"']+)["']""", text):
                target = (Path(name).parent / imported).as_posix().replace("./", "")
                assert target in files, (name, imported)
        assert (await http.get("/ui/nope.js")).status_code == 404
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mnemo"]
    for name in files:   # every file ships in the wheel
        packaged = f"gateway/ui/{name}"
        assert any(fnmatch.fnmatch(packaged, p) for p in patterns), packaged
