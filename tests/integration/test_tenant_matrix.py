"""Tenant isolation, generated from the gateway's own route table and the AgentService descriptor:
tenant B's key against each of tenant A's resources is 404 or 403 (never data, never a change);
admin routes refuse tenant keys; a revoked key stops working on every replica within the key cache TTL.

A route or RPC without a recipe below fails the test, so that a new one cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2

from mnemo.common.config import Settings
from mnemo.common.grpcutil import client_channel
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.server import GatewayService
from mnemo.v1 import agent_pb2, agent_pb2_grpc, common_pb2, console_pb2, memory_pb2
from tests.fixtures_routes import Route, agent_service_methods, client_streaming_call, rest_routes
from tests.fixtures_stack import ADMIN_KEY, Stack
from tests.fixtures_tenants import World, build_world, isolation_stack, leaks, snapshot_a  # noqa: F401
from tests.helpers import eventually

OWNED = "owned"      # names A's resource: 404 or 403
LISTING = "listing"  # B's own view (lists, models): allowed, never with A's data
OWN = "own"          # writes into B's own namespace (create, import, B's template): allowed, A unchanged
STREAM_READ_TIMEOUT = 5.0
Kwargs = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    kind: str
    kwargs: Kwargs = lambda w: {}
    on_b_agent: bool = False  # the path names B's own agent and A's sub-resource (cross-resource ids)
    stream: bool = False
    echoes: bool = False      # the answer holds what B sent (an import of an export B has): not a leak


def _chat(stream: bool) -> Kwargs:
    return lambda w: {"json": {"model": f"agent:{w.agent}", "stream": stream,
                               "messages": [{"role": "user", "content": "hi"}]}}


A = "/v1/agents/{agent_id}"
RECIPES: dict[tuple[str, str], list[Case]] = {
    ("GET", "/v1/agents"): [Case(LISTING, lambda w: {"params": {"page_size": 100}})],
    ("POST", "/v1/agents"): [Case(OWN, lambda w: {"json": {"name": "b-made"}})],
    ("POST", "/v1/agents/import"): [Case(OWN, lambda w: {"content": w.export,
                                                          "headers": {"Content-Type": "application/json"}},
                                         echoes=True)],
    ("GET", A): [Case(OWNED)],
    ("PATCH", A): [Case(OWNED, lambda w: {"json": {"name": "pwned"}})],
    ("DELETE", A): [Case(OWNED)],
    ("POST", f"{A}/messages"): [
        Case(OWNED, lambda w: {"json": {"message": "hi"}}),
        Case(OWNED, lambda w: {"json": {"message": "hi"}, "headers": {"Idempotency-Key": w.idempotency_key}}),
        # A's idempotency key on B's agent: a turn of B's, never a replay of A's.
        Case(OWN, lambda w: {"json": {"message": "b's turn"}, "headers": {"Idempotency-Key": w.idempotency_key}},
             on_b_agent=True)],
    ("POST", f"{A}/messages/stream"): [Case(OWNED, lambda w: {"json": {"message": "hi"}}, stream=True)],
    ("GET", f"{A}/events"): [
        Case(OWNED, lambda w: {"params": {"after": 0}}),
        Case(OWNED, lambda w: {"params": {"turn_id": w.turn}}),
        Case(OWNED, lambda w: {"params": {"follow": "true"}}, stream=True),
        Case(OWNED, lambda w: {"headers": {"Accept": "text/event-stream", "Last-Event-ID": "1"}}, stream=True),
        Case(OWN, lambda w: {"params": {"turn_id": w.turn}}, on_b_agent=True)],
    ("POST", f"{A}/messages/pop"): [Case(OWNED, lambda w: {"json": {"count": 1}})],
    ("POST", f"{A}/messages/rewrite"): [
        Case(OWNED, lambda w: {"json": {"text": "pwned"}}),
        Case(OWNED, lambda w: {"json": {"text": "pwned", "message_id": w.message}}, on_b_agent=True)],
    ("GET", f"{A}/memory"): [Case(OWNED)],
    ("GET", f"{A}/memory/{{label}}"): [Case(OWNED)],
    ("PUT", f"{A}/memory/{{label}}"): [Case(OWNED, lambda w: {"json": {"value": "pwned"}})],
    ("GET", f"{A}/recall"): [Case(OWNED, lambda w: {"params": {"query": "SECRET"}})],
    ("POST", f"{A}/recall"): [Case(OWNED, lambda w: {"json": {"messages": [{"role": "user", "text": "pwned"}]}})],
    ("GET", f"{A}/archival"): [Case(OWNED, lambda w: {"params": {"query": "comets"}})],
    ("POST", f"{A}/archival"): [Case(OWNED, lambda w: {"json": {"text": "pwned"}})],
    ("DELETE", f"{A}/archival/{{passage_id}}"): [Case(OWNED), Case(OWNED, on_b_agent=True)],
    ("POST", f"{A}/documents"): [
        Case(OWNED, lambda w: {"files": {"file": ("x.txt", b"pwned", "text/plain")}}),
        Case(OWNED, lambda w: {"params": {"filename": "x.txt"}, "content": b"pwned",
                               "headers": {"Content-Type": "text/plain"}})],
    ("POST", f"{A}/checkpoints"): [Case(OWNED, lambda w: {"json": {"name": "x"}})],
    ("GET", f"{A}/checkpoints"): [Case(OWNED)],
    ("POST", f"{A}/checkpoints/{{checkpoint_id}}/restore"): [Case(OWNED), Case(OWNED, on_b_agent=True)],
    ("GET", f"{A}/export"): [Case(OWNED)],
    ("POST", "/v1/chat/completions"): [Case(OWNED, _chat(False)), Case(OWNED, _chat(True))],
    ("GET", "/v1/models"): [Case(LISTING)],
    ("GET", f"{A}/pending-calls"): [Case(OWNED)],
    ("POST", f"{A}/tool-results"): [
        Case(OWNED, lambda w: {"json": {"call_id": w.pending_call, "result": "pwned"}}),
        Case(OWNED, lambda w: {"json": {"call_id": w.pending_call, "result": "pwned"}}, on_b_agent=True)],
    ("POST", f"{A}/approvals"): [
        Case(OWNED, lambda w: {"json": {"call_id": w.pending_call, "approve": True}}),
        Case(OWNED, lambda w: {"json": {"call_id": w.pending_call, "approve": True}}, on_b_agent=True)],
    ("POST", f"{A}/mcp-tools"): [
        Case(OWNED, lambda w: {"json": {"server_id": w.server}}),
        # A's server for B's own agent: not B's server
        Case(OWNED, lambda w: {"json": {"server_id": w.server}}, on_b_agent=True)],
    ("DELETE", f"{A}/tools/{{name}}"): [Case(OWNED)],
    ("POST", "/v1/mcp-servers"): [Case(OWN, lambda w: {"json": {"name": "b-tools", "transport": "http",
                                                                "url": "http://127.0.0.1:1/mcp"}})],
    ("GET", "/v1/mcp-servers"): [Case(LISTING)],
    ("DELETE", "/v1/mcp-servers/{server_id}"): [Case(OWNED)],
    ("GET", "/v1/mcp-servers/{server_id}/tools"): [Case(OWNED)],
    # MCP over HTTP: B's key sees B's agents only (the tools' isolation: tests/integration/test_mcp_server.py)
    ("POST", "/mcp"): [Case(LISTING, lambda w: {"json": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                         "params": {"name": "list_agents", "arguments": {}}},
                                                "headers": {"Accept": "application/json, text/event-stream"}})],
    ("POST", "/v1/blocks"): [Case(OWN, lambda w: {"json": {"label": "project", "value": "b's block"}})],
    ("GET", "/v1/blocks"): [Case(LISTING, lambda w: {"params": {"page_size": 100}})],
    ("GET", "/v1/blocks/{block_id}"): [Case(OWNED)],
    ("PATCH", "/v1/blocks/{block_id}"): [Case(OWNED, lambda w: {"json": {"value": "pwned"}})],
    ("DELETE", "/v1/blocks/{block_id}"): [Case(OWNED)],
    ("GET", "/v1/blocks/{block_id}/agents"): [Case(OWNED)],
    # A's block on A's agent, and A's block on B's own agent: neither is B's to attach
    ("POST", f"{A}/blocks/{{block_id}}"): [Case(OWNED), Case(OWNED, on_b_agent=True)],
    ("DELETE", f"{A}/blocks/{{block_id}}"): [Case(OWNED), Case(OWNED, on_b_agent=True)],
    # B's filter on B's own agent naming A's passage: deletes nothing of A's (a count of 0)
    ("DELETE", f"{A}/archival"): [Case(OWNED, lambda w: {"params": {"ids": [w.passage]}}),
                                  Case(OWN, lambda w: {"params": {"ids": [w.passage]}}, on_b_agent=True)],
    ("POST", f"{A}/consolidate"): [Case(OWNED)],
    ("GET", f"{A}/context"): [Case(OWNED)],
    ("GET", f"{A}/turns"): [Case(OWNED, lambda w: {"params": {"limit": 50}})],
    # A's turn id under B's own agent: not B's turn, so not found (never A's steps).
    ("GET", f"{A}/turns/{{turn_id}}/steps"): [Case(OWNED), Case(OWNED, on_b_agent=True)],
    ("GET", f"{A}/usage"): [Case(OWNED, lambda w: {"params": {"bucket_seconds": 60}})],
    **{key: cases for kind in ("personas", "humans") for key, cases in {
        ("GET", f"/v1/{kind}"): [Case(LISTING)],
        ("GET", f"/v1/{kind}/{{name}}"): [Case(OWNED)],
        ("DELETE", f"/v1/{kind}/{{name}}"): [Case(OWNED)],
        # Templates are per tenant: B writing A's template name makes B's own, A's stays as it was.
        ("PUT", f"/v1/{kind}/{{name}}"): [Case(OWN, lambda w: {"json": {"text": "b's text"}})],
        ("POST", f"/v1/{kind}"): [Case(OWN, lambda w: {"json": {"name": w.template, "text": "b's text"}})],
    }.items()},
}
ADMIN_BODIES: dict[tuple[str, str], Kwargs] = {
    ("POST", "/v1/admin/tenants"): lambda w: {"json": {"name": "pwned"}},
    ("POST", "/v1/admin/tenants/{tenant_id}/keys"): lambda w: {"json": {}},
    ("POST", "/v1/admin/tenants/{tenant_id}/mcp-servers"): lambda w: {"json": {
        "name": "pwned", "transport": "stdio", "command": "/bin/sh"}},
}


def _url(route: Route, w: World, on_b_agent: bool) -> str:
    return route.url(agent_id=w.b_agent if on_b_agent else w.agent, label="human", passage_id=w.passage,
                     checkpoint_id=w.checkpoint, name=w.template, tenant_id=w.a.id, key_id=w.a.key_id,
                     server_id=w.server, block_id=w.block, turn_id=w.turn)


async def _send(http: httpx.AsyncClient, route: Route, url: str, kwargs: dict[str, Any],
                stream: bool) -> tuple[int, str]:
    if not stream:
        r = await http.request(route.method, url, **kwargs)
        return r.status_code, r.text
    async with http.stream(route.method, url, **kwargs) as r:
        text = ""
        if r.status_code < 300:  # a stream that was let through: read what it gives for a while
            try:
                async with asyncio.timeout(STREAM_READ_TIMEOUT):
                    async for piece in r.aiter_text():
                        text += piece
            except TimeoutError:
                pass
        else:
            text = (await r.aread()).decode(errors="replace")
        return r.status_code, text


def _check(case: Case, status: int, text: str, w: World, what: Any) -> None:
    assert status < 500, (what, status, text[:500])
    if case.kind == OWNED:
        assert status in (403, 404), (what, status, text[:500])
    if not case.echoes:
        found = leaks(text, w, ids=case.kind != OWNED)
        assert not found, (what, found, text[:500])


async def test_rest_matrix_tenant_b_against_every_route(isolation_stack: Stack) -> None:
    w = await build_world(isolation_stack)
    routes = rest_routes(isolation_stack.gateway.app)
    served = {r.key for r in routes}
    missing = [r.key for r in routes if not r.public and not r.admin and r.key not in RECIPES]
    assert not missing, f"routes without an isolation recipe (add them to RECIPES): {missing}"
    stale = [key for key in [*RECIPES, *ADMIN_BODIES] if key not in served]
    assert not stale, f"recipes of routes that no longer exist: {stale}"
    assert all(r.key in RECIPES for r in routes if r.owned_params)

    before = await snapshot_a(w)
    plan: list[tuple[Route, Case]] = [(r, c) for r in routes if r.key in RECIPES for c in RECIPES[r.key]]
    plan.sort(key=lambda rc: rc[1].kind == OWN)  # B's own writes last (B's template would shadow A's name)
    admin_routes = [r for r in routes if r.admin]
    async with isolation_stack.http(w.b.api_key) as http:
        for route, case in plan:
            status, text = await _send(http, route, _url(route, w, case.on_b_agent), case.kwargs(w), case.stream)
            _check(case, status, text, w, (route.key, case))
        for route in admin_routes:
            kwargs = ADMIN_BODIES.get(route.key, lambda w: {})(w)
            r = await http.request(route.method, _url(route, w, False), **kwargs)
            assert r.status_code == 403, (route.key, r.status_code, r.text)
    print(f"REST isolation matrix: {len(plan)} cases over {len(RECIPES)} routes, "
          f"{len(admin_routes)} admin routes, {len(routes)} routes served")
    assert len(admin_routes) >= 3
    assert await snapshot_a(w) == before
    async with isolation_stack.http(w.a.api_key) as http:  # A's key still works with A's admin-made key
        assert (await http.get(f"/v1/agents/{w.agent}")).status_code == 200


# ---- gRPC ----------------------------------------------------------------------------------------------

Build = Callable[[World], Any]


@dataclass(frozen=True)
class RpcCase:
    kind: str
    build: Build
    echoes: bool = False  # as Case.echoes


def _doc(w: World) -> list[agent_pb2.PublicDocumentChunk]:
    return [agent_pb2.PublicDocumentChunk(header=agent_pb2.PublicDocumentHeader(agent_id=w.agent, filename="x.txt")),
            agent_pb2.PublicDocumentChunk(data=b"pwned")]


def _ref(w: World) -> agent_pb2.GetAgentRequest:
    return agent_pb2.GetAgentRequest(agent_id=w.agent)


RPC_RECIPES: dict[str, list[RpcCase]] = {
    "CreateAgent": [RpcCase(OWN, lambda w: memory_pb2.CreateAgentRequest(
        config=common_pb2.AgentConfig(name="b-made", id=w.agent, tenant_id=w.a.id)))],
    "GetAgent": [RpcCase(OWNED, _ref)],
    "ListAgents": [RpcCase(LISTING, lambda w: memory_pb2.ListAgentsRequest(tenant_id=w.a.id, page_size=100))],
    "UpdateAgent": [RpcCase(OWNED, lambda w: memory_pb2.UpdateAgentRequest(
        ref=common_pb2.AgentRef(agent_id=w.agent, tenant_id=w.a.id), config=common_pb2.AgentConfig(name="pwned"),
        update_mask=["name"]))],
    "DeleteAgent": [RpcCase(OWNED, _ref)],
    "SendMessage": [
        RpcCase(OWNED, lambda w: agent_pb2.SendMessageRequest(agent_id=w.agent, message="hi")),
        RpcCase(OWN, lambda w: agent_pb2.SendMessageRequest(agent_id=w.b_agent, message="b's turn",
                                                              idempotency_key=w.idempotency_key))],
    "StreamEvents": [
        RpcCase(OWNED, lambda w: agent_pb2.StreamEventsRequest(agent_id=w.agent)),
        RpcCase(OWNED, lambda w: agent_pb2.StreamEventsRequest(agent_id=w.agent, follow=True, turn_id=w.turn)),
        RpcCase(OWN, lambda w: agent_pb2.StreamEventsRequest(agent_id=w.b_agent, turn_id=w.turn))],
    "GetMemory": [RpcCase(OWNED, _ref)],
    "UpdateMemoryBlock": [RpcCase(OWNED, lambda w: agent_pb2.UpdateMemoryBlockRequest(
        agent_id=w.agent, label="human", value="pwned"))],
    "SearchRecall": [RpcCase(OWNED, lambda w: agent_pb2.PublicSearchRecallRequest(agent_id=w.agent, query="SECRET"))],
    "ImportRecall": [RpcCase(OWNED, lambda w: agent_pb2.PublicImportRecallRequest(
        agent_id=w.agent, messages=[common_pb2.Message(role="user", text="pwned")]))],
    "SearchArchival": [RpcCase(OWNED, lambda w: agent_pb2.PublicSearchArchivalRequest(agent_id=w.agent,
                                                                                       query="comets"))],
    "InsertArchival": [RpcCase(OWNED, lambda w: agent_pb2.PublicInsertArchivalRequest(
        agent_id=w.agent, passages=[memory_pb2.PassageInput(text="pwned")]))],
    "DeleteArchival": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicDeleteArchivalRequest(agent_id=w.agent, passage_id=w.passage)),
        RpcCase(OWNED, lambda w: agent_pb2.PublicDeleteArchivalRequest(agent_id=w.b_agent, passage_id=w.passage))],
    "UploadDocument": [RpcCase(OWNED, _doc)],
    "CreateCheckpoint": [RpcCase(OWNED, lambda w: agent_pb2.PublicCreateCheckpointRequest(agent_id=w.agent))],
    "ListCheckpoints": [RpcCase(OWNED, _ref)],
    "RestoreCheckpoint": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicRestoreCheckpointRequest(agent_id=w.agent,
                                                                          checkpoint_id=w.checkpoint)),
        RpcCase(OWNED, lambda w: agent_pb2.PublicRestoreCheckpointRequest(agent_id=w.b_agent,
                                                                          checkpoint_id=w.checkpoint))],
    "ExportAgent": [RpcCase(OWNED, _ref)],
    "ImportAgent": [RpcCase(OWN, lambda w: [memory_pb2.DataChunk(data=w.export)], echoes=True)],
    "ListTemplates": [RpcCase(LISTING, lambda w: agent_pb2.PublicListTemplatesRequest(kind="persona"))],
    "GetTemplate": [RpcCase(OWNED, lambda w: agent_pb2.PublicTemplateRef(kind="persona", name=w.template))],
    "DeleteTemplate": [RpcCase(OWNED, lambda w: agent_pb2.PublicTemplateRef(kind="human", name=w.template))],
    "PutTemplate": [RpcCase(OWN, lambda w: agent_pb2.PublicPutTemplateRequest(
        template=common_pb2.Template(kind="persona", name=w.template, text="b's text")))],
    "PopMessages": [RpcCase(OWNED, lambda w: agent_pb2.PublicPopMessagesRequest(agent_id=w.agent, count=1))],
    "RewriteMessage": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicRewriteMessageRequest(agent_id=w.agent, text="pwned")),
        RpcCase(OWNED, lambda w: agent_pb2.PublicRewriteMessageRequest(agent_id=w.b_agent, text="pwned",
                                                                       message_id=w.message))],
    "ListModels": [RpcCase(LISTING, lambda w: empty_pb2.Empty())],
    "SubmitToolResult": [
        RpcCase(OWNED, lambda w: agent_pb2.ToolResultRequest(agent_id=w.agent, call_id=w.pending_call, result="x")),
        RpcCase(OWNED, lambda w: agent_pb2.ToolResultRequest(agent_id=w.b_agent, call_id=w.pending_call,
                                                             result="x"))],
    "SubmitApproval": [
        RpcCase(OWNED, lambda w: agent_pb2.ApprovalRequest(agent_id=w.agent, call_id=w.pending_call, approve=True)),
        RpcCase(OWNED, lambda w: agent_pb2.ApprovalRequest(agent_id=w.b_agent, call_id=w.pending_call,
                                                           approve=True))],
    "ListPendingCalls": [RpcCase(OWNED, _ref)],
    "RegisterMcpServer": [RpcCase(OWN, lambda w: agent_pb2.PublicMcpServer(
        name="b-tools", transport="http", url="http://127.0.0.1:1/mcp"))],
    "ListMcpServers": [RpcCase(LISTING, lambda w: empty_pb2.Empty())],
    "DeleteMcpServer": [RpcCase(OWNED, lambda w: agent_pb2.McpServerRequest(server_id=w.server))],
    "ListMcpServerTools": [RpcCase(OWNED, lambda w: agent_pb2.McpServerRequest(server_id=w.server))],
    "AttachMcpTools": [
        RpcCase(OWNED, lambda w: agent_pb2.AttachMcpToolsRequest(agent_id=w.agent, server_id=w.server)),
        RpcCase(OWNED, lambda w: agent_pb2.AttachMcpToolsRequest(agent_id=w.b_agent, server_id=w.server))],
    "DetachTool": [RpcCase(OWNED, lambda w: agent_pb2.DetachToolRequest(agent_id=w.agent, name="lookup"))],
    "CreateBlock": [RpcCase(OWN, lambda w: agent_pb2.PublicCreateBlockRequest(label="project", value="b's block"))],
    "ListBlocks": [RpcCase(LISTING, lambda w: agent_pb2.PublicListBlocksRequest(page_size=100))],
    "GetBlock": [RpcCase(OWNED, lambda w: agent_pb2.PublicBlockRef(block_id=w.block))],
    "UpdateBlock": [RpcCase(OWNED, lambda w: agent_pb2.PublicUpdateBlockRequest(block_id=w.block, value="pwned"))],
    "DeleteBlock": [RpcCase(OWNED, lambda w: agent_pb2.PublicBlockRef(block_id=w.block))],
    "ListBlockAgents": [RpcCase(OWNED, lambda w: agent_pb2.PublicBlockRef(block_id=w.block))],
    "AttachBlock": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicAttachBlockRequest(agent_id=w.agent, block_id=w.block)),
        RpcCase(OWNED, lambda w: agent_pb2.PublicAttachBlockRequest(agent_id=w.b_agent, block_id=w.block))],
    "DetachBlock": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicAttachBlockRequest(agent_id=w.agent, block_id=w.block)),
        RpcCase(OWNED, lambda w: agent_pb2.PublicAttachBlockRequest(agent_id=w.b_agent, block_id=w.block))],
    "BulkDeleteArchival": [
        RpcCase(OWNED, lambda w: agent_pb2.PublicBulkDeleteArchivalRequest(agent_id=w.agent, ids=[w.passage])),
        RpcCase(OWN, lambda w: agent_pb2.PublicBulkDeleteArchivalRequest(agent_id=w.b_agent, ids=[w.passage]))],
    "ConsolidateAgent": [RpcCase(OWNED, _ref)],
    "GetContextWindow": [RpcCase(OWNED, _ref)],
    "ListTurns": [RpcCase(OWNED, lambda w: console_pb2.ListTurnsRequest(agent_id=w.agent, limit=50))],
    "GetTurn": [
        RpcCase(OWNED, lambda w: console_pb2.GetTurnRequest(agent_id=w.agent, turn_id=w.turn)),
        RpcCase(OWNED, lambda w: console_pb2.GetTurnRequest(agent_id=w.b_agent, turn_id=w.turn))],
    "GetAgentUsage": [RpcCase(OWNED, lambda w: console_pb2.AgentUsageRequest(agent_id=w.agent))],
}


async def _rpc(stub: Any, name: str, request: Any, auth: Any, client_streaming: bool,
               server_streaming: bool) -> str:
    """Call `name`; the text of everything it answered (AioRpcError on a non-OK status)."""
    method = getattr(stub, name)
    if client_streaming:
        answers = await client_streaming_call(method, request, metadata=auth, timeout=30.0,
                                              server_streaming=server_streaming)
        return "\n".join(str(a) for a in answers)
    if server_streaming:
        out = []
        try:
            async with asyncio.timeout(STREAM_READ_TIMEOUT):
                async for item in method(request, metadata=auth, timeout=30.0):
                    out.append(str(item))
        except TimeoutError:
            pass
        return "\n".join(out)
    return str(await method(request, metadata=auth, timeout=30.0))


async def test_grpc_matrix_tenant_b_against_every_method(isolation_stack: Stack) -> None:
    w = await build_world(isolation_stack)
    methods = agent_service_methods()
    missing = [m.name for m in methods if m.name not in RPC_RECIPES]
    assert not missing, f"AgentService methods without an isolation recipe (add them to RPC_RECIPES): {missing}"
    assert not set(RPC_RECIPES) - {m.name for m in methods}
    before = await snapshot_a(w)
    stub = isolation_stack.agent_stub()
    auth = isolation_stack.grpc_auth(w.b.api_key)
    plan = [(m, c) for m in methods for c in RPC_RECIPES[m.name]]
    plan.sort(key=lambda mc: mc[1].kind == OWN)
    for method, case in plan:
        what = (method.name, case.kind)
        try:
            text = await _rpc(stub, method.name, case.build(w), auth, method.client_streaming,
                              method.server_streaming)
        except grpc.aio.AioRpcError as err:
            if case.kind == OWNED:
                assert err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), \
                    (what, err.code(), err.details())
            else:
                assert err.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), what
            assert not leaks(err.details() or "", w), (what, err.details())
            continue
        assert case.kind != OWNED, (what, "answered", text[:500])
        if not case.echoes:
            assert not leaks(text, w, ids=True), (what, leaks(text, w, ids=True), text[:500])
    print(f"gRPC isolation matrix: {len(plan)} cases over {len(methods)} methods")
    assert await snapshot_a(w) == before


# ---- revocation across replicas -------------------------------------------------------------------

async def _replica(stack: Stack, nats_url: str, home: Path) -> GatewayService:
    gateway = GatewayService(
        Settings(nats_url=nats_url, home=home, http_port=0, grpc_port=0, admin_key=ADMIN_KEY,
                 rpc_group=stack.llm.settings.rpc_group),
        memory_target=stack.memory.address, llm_target=stack.llm.address,
        orchestrator_target=stack.orchestrator.address,
        options=GatewayOptions(local_bootstrap=False, rate_per_second=100_000, rate_burst=100_000))
    await gateway.start()
    return gateway


async def test_a_revoked_key_stops_on_every_replica_within_the_cache_ttl(isolation_stack: Stack, nats_url: str,
                                                                       tmp_path: Path) -> None:
    w = await build_world(isolation_stack)
    replica = await _replica(isolation_stack, nats_url, tmp_path)
    gateways = [isolation_stack.gateway, replica]
    try:
        ttl = max(g.options.key_cache_ttl for g in gateways)
        assert ttl <= 10, "the key cache TTL bounds how long a revoked key lives"
        clients = [httpx.AsyncClient(base_url=g.base_url, headers={"Authorization": f"Bearer {w.b.api_key}"},
                                     timeout=30.0) for g in gateways]
        try:
            for http in clients:  # warm every replica's key cache
                assert (await http.get(f"/v1/agents/{w.b_agent}")).status_code == 200
            async with isolation_stack.http(ADMIN_KEY) as admin:
                assert (await admin.delete(f"/v1/admin/keys/{w.b.key_id}")).status_code == 204
            revoked_at = time.monotonic()

            async def refused_everywhere() -> bool:
                codes = [(await http.get(f"/v1/agents/{w.b_agent}")).status_code for http in clients]
                return all(code == 401 for code in codes)
            await eventually(refused_everywhere, timeout=ttl + 2.0, interval=0.05,
                             message="the revoked key refused on every replica")
            assert time.monotonic() - revoked_at <= ttl + 0.5
            routes = [r for r in rest_routes(isolation_stack.gateway.app) if not r.public and not r.admin]
            for http in clients:
                for route in routes:
                    r = await http.request(route.method, _url(route, w, True))
                    assert r.status_code == 401, (route.key, r.status_code, r.text)
        finally:
            for http in clients:
                await http.aclose()
        for gateway in gateways:
            await _all_rpcs_unauthenticated(isolation_stack, gateway, w)
    finally:
        await replica.stop()


async def _all_rpcs_unauthenticated(stack: Stack, gateway: GatewayService, w: World) -> None:
    channel = client_channel(gateway.address)
    try:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        for method in agent_service_methods():
            request = RPC_RECIPES[method.name][0].build(w)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _rpc(stub, method.name, request, stack.grpc_auth(w.b.api_key), method.client_streaming,
                           method.server_streaming)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (method.name, err.value.code())
    finally:
        await channel.close()
