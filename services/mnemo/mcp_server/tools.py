"""The MCP tools Mnemo offers, written once for both transports with the official SDK's `MCPServer`.

Each tool calls the REST API through `AsyncMnemo` (the client a transport gives for the request: the
one of `mnemo mcp`, or one bound to the HTTP request's key). A failure of the API is a tool error
carrying the API's reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from mnemo.client import AsyncMnemo, MnemoError

INSTRUCTIONS = ("Mnemo keeps stateful agents with long-term memory. list_agents gives their ids; the other tools "
                "read and edit an agent's core memory, search and insert archival memory, search the "
                "conversation history (recall), load documents and talk to the agent.")
MAX_PAGE_SIZE = 50

# Gives the client of the request a tool serves (the transport decides whose key it carries).
ClientFor = Callable[[Context], AbstractAsyncContextManager[AsyncMnemo]]


@asynccontextmanager
async def _api(clients: ClientFor, ctx: Context) -> AsyncIterator[AsyncMnemo]:
    """The request's client; an API failure becomes a tool error with its reason."""
    try:
        async with clients(ctx) as client:
            yield client
    except MnemoError as exc:
        raise ToolError(exc.reason or str(exc)) from None


def _page(page: int, page_size: int) -> tuple[int, int]:
    return max(1, page), min(max(1, page_size), MAX_PAGE_SIZE)


def build_server(clients: ClientFor) -> MCPServer:
    """The MCP server with Mnemo's tools."""
    # (log_level: the SDK configures logging only where nothing did before: quiet there)
    server = MCPServer("mnemo", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    async def list_agents(ctx: Context) -> list[dict[str, Any]]:
        """The agents of your tenant: id, name, model."""
        async with _api(clients, ctx) as api:
            agents = await api.agents.list(page_size=100)
        return [{"id": a.id, "name": a.name, "model": a.model, "created_at": a.created_at} for a in agents]

    @server.tool()
    async def read_core_memory(agent_id: str, ctx: Context) -> dict[str, Any]:
        """An agent's core memory: its blocks (persona, human, ...), summary and memory counts."""
        async with _api(clients, ctx) as api:
            memory = await api.agents.memory(agent_id)
        return {"blocks": {b.label: b.value for b in memory.blocks}, "summary": memory.summary,
                "counts": memory.counts.model_dump() if memory.counts else {}}

    @server.tool()
    async def edit_core_memory(agent_id: str, label: str, value: str, ctx: Context,
                               mode: Literal["replace", "append"] = "replace") -> dict[str, Any]:
        """Set a core-memory block to `value` (mode replace) or add `value` as a new line (mode append)."""
        async with _api(clients, ctx) as api:
            if mode == "append":
                current = await api.agents.get_block(agent_id, label)
                value = f"{current.value}\n{value}" if current.value else value
            block = await api.agents.set_block(agent_id, label, value)
        return {"label": block.label, "value": block.value, "limit": block.limit}

    @server.tool()
    async def search_archival(agent_id: str, query: str, ctx: Context, page: int = 1,
                              page_size: int = 10) -> dict[str, Any]:
        """Search an agent's archival memory by meaning and words (empty query: newest first)."""
        page, page_size = _page(page, page_size)
        async with _api(clients, ctx) as api:
            found = await api.agents.archival(agent_id, query, page=page, page_size=page_size)
        return {"total": found.total, "page": page, "hits": [
            {"id": h.passage.id, "text": h.passage.text, "tags": h.passage.tags,
             "created_at": h.passage.created_at, "score": h.score} for h in found.hits]}

    @server.tool()
    async def insert_archival(agent_id: str, text: str, ctx: Context,
                              tags: list[str] | None = None) -> dict[str, Any]:
        """Store a passage in an agent's archival memory."""
        async with _api(clients, ctx) as api:
            ids = await api.agents.insert_archival(agent_id, text, tags=tags)
        return {"ids": ids}

    @server.tool()
    async def search_recall(agent_id: str, ctx: Context, query: str = "", start: str = "", end: str = "",
                            page: int = 1, page_size: int = 20) -> dict[str, Any]:
        """Search an agent's conversation history by text and/or dates (start, end: YYYY-MM-DD or RFC 3339)."""
        page, page_size = _page(page, page_size)
        async with _api(clients, ctx) as api:
            found = await api.agents.recall(agent_id, query, start=start or None, end=end or None, page=page,
                                            page_size=page_size)
        return {"total": found.total, "page": page, "messages": [
            {"id": h.message.id, "role": h.message.role, "text": h.message.text,
             "created_at": h.message.created_at} for h in found.hits]}

    @server.tool()
    async def load_document(agent_id: str, filename: str, text: str, ctx: Context) -> dict[str, Any]:
        """Load a text or Markdown document into an agent's archival memory (chunked into passages)."""
        async with _api(clients, ctx) as api:
            result = await api.agents.load_text(agent_id, text, filename=filename)
        return {"source_id": result.source_id, "passages": result.passages}

    @server.tool()
    async def send_message(agent_id: str, message: str, ctx: Context) -> dict[str, Any]:
        """Send a message to an agent and wait for its reply (the turn's events, condensed)."""
        async with _api(clients, ctx) as api:
            result = await api.agents.send_message(agent_id, message)
        calls = [{"name": e.name, "arguments": _parsed(e.arguments)} for e in result.events
                 if e.type == "function_call" and e.name != "send_message"]
        return {"turn_id": result.turn_id, "stop_reason": result.stop_reason, "reply": result.reply,
                "function_calls": calls}

    return server


def _parsed(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
