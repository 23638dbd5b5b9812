"""The API's resources, shared by the sync and async clients.

Each method returns `client._request(...)`: a result for `Mnemo`, an awaitable for `AsyncMnemo`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from mnemo.client.models import (
    Agent,
    ArchivalPage,
    AttachResult,
    Checkpoint,
    CoreMemory,
    IngestResult,
    InsertResult,
    McpServer,
    MemoryBlock,
    Message,
    PendingCalls,
    RecallPage,
    Template,
    ToolSpec,
    TurnResult,
)
from mnemo.client.tool_loop import ApprovalHandler, ToolHandler

M = TypeVar("M", bound=BaseModel)


def items(data: Any, *keys: str) -> list[Any]:
    """The list in a response: the body itself, or its first list-valued key among `keys`."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in keys:
            if isinstance(data.get(key), list):
                return data[key]
    return []


def one(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def many(model: type[M], *keys: str) -> Callable[[Any], list[M]]:
    return lambda data: [model.model_validate(x) for x in items(data, *keys)]


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class _Resource:
    def __init__(self, client: Any) -> None:
        self._c = client


class Agents(_Resource):
    """/v1/agents: lifecycle, messages, memory, recall, archival, documents, checkpoints."""

    def create(self, *, name: str | None = None, persona: str | None = None, persona_name: str | None = None,
               human: str | None = None, human_name: str | None = None, model: str | None = None,
               context_window: int | None = None, limits: dict[str, Any] | None = None,
               **extra: Any) -> Any:
        body = _clean({"name": name, "persona": persona, "persona_name": persona_name, "human": human,
                       "human_name": human_name, "model": model, "context_window": context_window,
                       "limits": limits, **extra})
        return self._c._request("POST", "/v1/agents", json=body, cast=one(Agent))

    def list(self, *, page: int | None = None, page_size: int | None = None) -> Any:
        return self._c._request("GET", "/v1/agents", params=_clean({"page": page, "page_size": page_size}),
                                cast=many(Agent, "agents", "items", "data"))

    def get(self, agent_id: str) -> Any:
        return self._c._request("GET", f"/v1/agents/{agent_id}", cast=one(Agent))

    def update(self, agent_id: str, **fields: Any) -> Any:
        return self._c._request("PATCH", f"/v1/agents/{agent_id}", json=_clean(fields), cast=one(Agent))

    def delete(self, agent_id: str) -> Any:
        return self._c._request("DELETE", f"/v1/agents/{agent_id}", cast=lambda _: None)

    # ---- messages --------------------------------------------------------------------------
    def send_message(self, agent_id: str, message: str, *, idempotency_key: str | None = None,
                     role: str | None = None, max_steps: int | None = None,
                     tools: builtins.list[dict[str, Any]] | None = None, on_tool_call: ToolHandler | None = None,
                     on_approval: ApprovalHandler | None = None) -> Any:
        """Run one turn and wait for it: the reply is `result.reply`.

        `tools`: client-side tools of this turn (`{"name", "description", "parameters"}`, parameters a
        JSON Schema). When the agent calls one (or one of its own client-side tools) the turn pauses;
        with `on_tool_call(name, arguments)` the client runs it and sends its return value (an exception
        is sent as the call's error), with `on_approval(name, arguments) -> bool | (bool, reason)` it
        decides calls that need approval; the turn goes on until it ends, or pauses on a call nobody
        handles (`result.paused`). Handlers may be async with `AsyncMnemo`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = _clean({"message": message, "role": role, "max_steps": max_steps, "tools": tools})
        if on_tool_call is None and on_approval is None:
            return self._c._request("POST", f"/v1/agents/{agent_id}/messages", json=body, headers=headers,
                                    cast=one(TurnResult))
        return self._c._turn_with_tools(agent_id, body, headers, on_tool_call, on_approval)

    def stream_message(self, agent_id: str, message: str, *, idempotency_key: str | None = None,
                       role: str | None = None, tools: builtins.list[dict[str, Any]] | None = None) -> Any:
        """Iterate the turn's events as they happen (resumes by seq if the connection drops); ends when
        the turn ends or pauses (`turn_paused`)."""
        body = _clean({"message": message, "role": role, "tools": tools})
        return self._c._stream_turn(agent_id, body, idempotency_key)

    # ---- tools -----------------------------------------------------------------------------
    def pending_calls(self, agent_id: str) -> Any:
        """The calls the agent's paused turn waits on."""
        return self._c._request("GET", f"/v1/agents/{agent_id}/pending-calls", cast=one(PendingCalls))

    def tool_result(self, agent_id: str, call_id: str, result: Any = None, *, error: str | None = None) -> Any:
        """Answer a client-side tool's call; waits for the turn to end or pause again."""
        body: dict[str, Any] = {"call_id": call_id, "error": error} if error is not None else \
            {"call_id": call_id, "result": result}
        return self._c._request("POST", f"/v1/agents/{agent_id}/tool-results", json=body, cast=one(TurnResult))

    def approve(self, agent_id: str, call_id: str, approve: bool = True, reason: str = "") -> Any:
        """Approve (or deny, with a reason for the agent) a call that needs approval."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/approvals",
                                json={"call_id": call_id, "approve": approve, "reason": reason},
                                cast=one(TurnResult))

    def attach_mcp_tools(self, agent_id: str, server_id: str, tools: builtins.list[str] | None = None) -> Any:
        """Give the agent tools of a registered MCP server (all of them, or those named)."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/mcp-tools",
                                json={"server_id": server_id, "tools": tools or []}, cast=one(Agent))

    def detach_tool(self, agent_id: str, name: str) -> Any:
        return self._c._request("DELETE", f"/v1/agents/{agent_id}/tools/{name}", cast=one(Agent))

    def events(self, agent_id: str, *, after: int = 0, turn_id: str | None = None,
               follow: bool = False) -> Any:
        """Iterate the agent's events after sequence number `after` (resume a stream)."""
        return self._c._stream_events(agent_id, after, turn_id, follow)

    def pop_messages(self, agent_id: str, count: int = 1) -> Any:
        """Remove the last `count` messages from the agent's queue; returns them."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/messages/pop", json={"count": count},
                                cast=many(Message, "removed", "messages"))

    def rewrite_message(self, agent_id: str, text: str, message_id: str | None = None) -> Any:
        """Replace the text of the agent's last reply (or of `message_id`)."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/messages/rewrite",
                                json=_clean({"text": text, "message_id": message_id}), cast=one(Message))

    # ---- core memory -----------------------------------------------------------------------
    def memory(self, agent_id: str) -> Any:
        return self._c._request("GET", f"/v1/agents/{agent_id}/memory", cast=one(CoreMemory))

    def get_block(self, agent_id: str, label: str) -> Any:
        return self._c._request("GET", f"/v1/agents/{agent_id}/memory/{label}", cast=one(MemoryBlock))

    def set_block(self, agent_id: str, label: str, value: str, limit: int | None = None) -> Any:
        return self._c._request("PUT", f"/v1/agents/{agent_id}/memory/{label}",
                                json=_clean({"value": value, "limit": limit}), cast=one(MemoryBlock))

    # ---- recall / archival -----------------------------------------------------------------
    def recall(self, agent_id: str, query: str = "", *, start: str | None = None, end: str | None = None,
               role: str | None = None, page: int | None = None, page_size: int | None = None) -> Any:
        params = _clean({"query": query or None, "start": start, "end": end, "role": role, "page": page,
                         "page_size": page_size})
        return self._c._request("GET", f"/v1/agents/{agent_id}/recall", params=params,
                                cast=one(RecallPage))

    def import_recall(self, agent_id: str, messages: builtins.list[dict[str, Any]]) -> Any:
        return self._c._request("POST", f"/v1/agents/{agent_id}/recall", json={"messages": messages})

    def archival(self, agent_id: str, query: str = "", *, tags: builtins.list[str] | None = None,
                 page: int | None = None, page_size: int | None = None) -> Any:
        params = _clean({"query": query or None, "tags": tags or None, "page": page, "page_size": page_size})
        return self._c._request("GET", f"/v1/agents/{agent_id}/archival", params=params,
                                cast=one(ArchivalPage))

    def insert_archival(self, agent_id: str, text: str | builtins.list[str],
                        tags: builtins.list[str] | None = None, *, ttl_seconds: int | None = None,
                        expires_at: str | None = None, dedup: bool | None = None) -> Any:
        """Store passages; their ids (a duplicate of a stored passage answers with that one's id).
        `ttl_seconds` / `expires_at` make them expire; `dedup` switches deduplication for this call."""
        texts = [text] if isinstance(text, str) else text
        passages = [_clean({"text": t, "tags": tags, "ttl_seconds": ttl_seconds, "expires_at": expires_at})
                    for t in texts]
        return self._c._request("POST", f"/v1/agents/{agent_id}/archival", json=_insert_body(passages, dedup),
                                cast=lambda d: items(d, "ids") if isinstance(d, dict) else d)

    def insert_passages(self, agent_id: str, passages: builtins.list[dict[str, Any]], *,
                        dedup: bool | None = None) -> Any:
        """Store passages given as dicts (text, tags, id, metadata, ttl_seconds, expires_at); what was
        stored and what was a duplicate, with counts."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/archival", json=_insert_body(passages, dedup),
                                cast=one(InsertResult))

    def delete_archival_where(self, agent_id: str, *, tags: builtins.list[str] | None = None,
                              start: str | None = None, end: str | None = None, source_id: str | None = None,
                              ids: builtins.list[str] | None = None) -> Any:
        """Delete the passages matching every filter given (at least one); how many were deleted."""
        params = _clean({"tags": tags or None, "start": start, "end": end, "source_id": source_id,
                         "ids": ids or None})
        return self._c._request("DELETE", f"/v1/agents/{agent_id}/archival", params=params,
                                cast=lambda d: int(d["deleted"]))

    # ---- shared blocks, consolidation ------------------------------------------------------
    def attach_block(self, agent_id: str, block_id: str) -> Any:
        """Attach a shared block (a block of the same label is replaced, the agent's own kept in a checkpoint)."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/blocks/{block_id}", cast=one(AttachResult))

    def detach_block(self, agent_id: str, block_id: str) -> Any:
        return self._c._request("DELETE", f"/v1/agents/{agent_id}/blocks/{block_id}", cast=lambda _: None)

    def consolidate(self, agent_id: str) -> Any:
        """Queue a memory consolidation now (the agent must have consolidation enabled)."""
        return self._c._request("POST", f"/v1/agents/{agent_id}/consolidate", cast=lambda _: None)

    def delete_archival(self, agent_id: str, passage_id: str) -> Any:
        return self._c._request("DELETE", f"/v1/agents/{agent_id}/archival/{passage_id}", cast=lambda _: None)

    def upload_document(self, agent_id: str, path: str | Path, *, content_type: str | None = None) -> Any:
        """Load a document (text, markdown, PDF) into archival memory."""
        p = Path(path)
        files = {"file": (p.name, p.read_bytes(), content_type or _guess_type(p))}
        return self._c._request("POST", f"/v1/agents/{agent_id}/documents", files=files,
                                cast=one(IngestResult))

    def load_text(self, agent_id: str, text: str, *, filename: str = "document.txt") -> Any:
        """Load a text or Markdown document given as a string into archival memory."""
        kind = "text/markdown" if filename.lower().endswith((".md", ".markdown")) else "text/plain"
        return self._c._request("POST", f"/v1/agents/{agent_id}/documents", params={"filename": filename},
                                content=text.encode(), headers={"Content-Type": kind}, cast=one(IngestResult))

    # ---- checkpoints, export / import ------------------------------------------------------
    def checkpoint(self, agent_id: str, name: str | None = None) -> Any:
        return self._c._request("POST", f"/v1/agents/{agent_id}/checkpoints", json=_clean({"name": name}),
                                cast=one(Checkpoint))

    def checkpoints(self, agent_id: str) -> Any:
        return self._c._request("GET", f"/v1/agents/{agent_id}/checkpoints",
                                cast=many(Checkpoint, "checkpoints", "items"))

    def restore(self, agent_id: str, checkpoint_id: str) -> Any:
        return self._c._request("POST", f"/v1/agents/{agent_id}/checkpoints/{checkpoint_id}/restore",
                                cast=one(Agent))

    def export(self, agent_id: str) -> Any:
        """The agent's full export (bytes, JSON)."""
        return self._c._request("GET", f"/v1/agents/{agent_id}/export", raw=True)

    def import_(self, data: bytes | str | dict[str, Any]) -> Any:
        """Create an agent from an export."""
        if isinstance(data, dict):
            content = json.dumps(data).encode()
        else:
            content = data.encode() if isinstance(data, str) else data
        return self._c._request("POST", "/v1/agents/import", content=content,
                                headers={"Content-Type": "application/json"}, cast=one(Agent))


class McpServers(_Resource):
    """/v1/mcp-servers: the tenant's MCP tool servers."""

    def register(self, name: str, *, url: str | None = None, headers: dict[str, str] | None = None,
                 command: str | None = None, args: builtins.list[str] | None = None,
                 env: dict[str, str] | None = None, timeout_seconds: float | None = None) -> Any:
        """An http server (`url`, `headers`), or a stdio `command` (the admin key, or an allowed command)."""
        transport = "stdio" if command else "http"
        body = _clean({"name": name, "transport": transport, "url": url, "headers": headers, "command": command,
                       "args": args, "env": env, "timeout_seconds": timeout_seconds})
        return self._c._request("POST", "/v1/mcp-servers", json=body, cast=one(McpServer))

    def list(self) -> Any:
        return self._c._request("GET", "/v1/mcp-servers", cast=many(McpServer, "servers"))

    def tools(self, server_id: str) -> Any:
        """The tools the server offers (listed live)."""
        return self._c._request("GET", f"/v1/mcp-servers/{server_id}/tools", cast=many(ToolSpec, "tools"))

    def delete(self, server_id: str) -> Any:
        return self._c._request("DELETE", f"/v1/mcp-servers/{server_id}", cast=lambda _: None)


class Templates(_Resource):
    """/v1/personas or /v1/humans."""

    def __init__(self, client: Any, kind: str) -> None:
        super().__init__(client)
        self.kind = kind
        self._path = f"/v1/{kind}s"

    def list(self) -> Any:
        return self._c._request("GET", self._path, cast=many(Template, f"{self.kind}s", "templates", "items"))

    def get(self, name: str) -> Any:
        return self._c._request("GET", f"{self._path}/{name}", cast=one(Template))

    def create(self, name: str, text: str) -> Any:
        return self._c._request("POST", self._path, json={"name": name, "text": text}, cast=one(Template))

    def update(self, name: str, text: str) -> Any:
        return self._c._request("PUT", f"{self._path}/{name}", json={"text": text}, cast=one(Template))

    def delete(self, name: str) -> Any:
        return self._c._request("DELETE", f"{self._path}/{name}", cast=lambda _: None)


class Models(_Resource):
    """/v1/models: the models agents can use."""

    def list(self) -> Any:
        """{"models": [{"name", "provider", "context_window", "max_output_tokens", ...}],
        "default_model", "default_embedding_model"}."""
        return self._c._request("GET", "/v1/models")


class Admin(_Resource):
    """/v1/admin: tenants and keys (needs the admin key as the client's key)."""

    def create_tenant(self, name: str) -> Any:
        return self._c._request("POST", "/v1/admin/tenants", json={"name": name})

    def create_key(self, tenant_id: str) -> Any:
        return self._c._request("POST", f"/v1/admin/tenants/{tenant_id}/keys", json={})

    def revoke_key(self, key_id: str) -> Any:
        return self._c._request("DELETE", f"/v1/admin/keys/{key_id}", cast=lambda _: None)


def _insert_body(passages: list[dict[str, Any]], dedup: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"passages": passages}
    if dedup is not None:
        body["dedup"] = "on" if dedup else "off"
    return body


def _guess_type(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".pdf": "application/pdf", ".md": "text/markdown", ".markdown": "text/markdown",
            ".json": "application/json"}.get(suffix, "text/plain")
