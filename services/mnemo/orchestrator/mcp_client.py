"""Tools of MCP servers (docs/tools.md), through the official `mcp` SDK's client.

One session per registered server (by tenant and server id), opened on first use and kept: a stdio
server is a child process of this orchestrator, an HTTP server a streamable-HTTP session with the
registered headers. A session that fails (the process died, the connection broke, a call timed out)
is closed and the next call opens a new one. A server that cannot be reached makes its tools fail
with a clear error returned to the agent; nothing else waits on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx2

from mnemo.common import metrics
from mnemo.common.errors import MnemoError, NotFound
from mnemo.common.ports import MemoryPort
from mnemo.common.telemetry import span
from mnemo.orchestrator.executor import truncate
from mnemo.orchestrator.functions import FunctionError
from mnemo.v1 import common_pb2, memory_pb2

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0        # opening a session (a stdio server starting, an HTTP handshake)
SERVER_CACHE_SECONDS = 5.0    # how long a looked-up registration is trusted
MAX_SESSIONS = 256            # open sessions kept (least recently used closed first)


class McpUnavailable(Exception):
    """The server could not be reached, or its session broke."""


def _target(server: memory_pb2.McpServer) -> tuple[Any, httpx2.AsyncClient | None]:
    """What `mcp.Client` connects to, and the HTTP client to close afterwards."""
    # The SDK loads on first use (~27 MB): most stacks never register an MCP server.
    from mcp import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    if server.transport == "stdio":
        return StdioServerParameters(command=server.command, args=list(server.args), env=dict(server.env)), None
    http = httpx2.AsyncClient(headers=dict(server.headers),
                              timeout=httpx2.Timeout(30.0, read=max(300.0, server.timeout_seconds)))
    return streamable_http_client(server.url, http_client=http), http


class _Session:
    """One open session, owned by its own task (the SDK's context managers stay in one task)."""

    def __init__(self, server: memory_pb2.McpServer) -> None:
        self.server = server
        self.fingerprint = server.SerializeToString(deterministic=True)
        self.used = time.monotonic()
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing.is_set()

    async def client(self) -> Client:
        if self._task is None:
            self._task = asyncio.create_task(self._own(), name=f"mcp-{self.server.id}")
        try:
            await asyncio.wait_for(self._ready.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise McpUnavailable(f"no answer within {CONNECT_TIMEOUT:.0f} s") from None
        if self._client is None:
            raise McpUnavailable(_reason(self._error) if self._error is not None else "the session closed")
        return self._client

    async def _own(self) -> None:
        from mcp import Client

        target, http = _target(self.server)
        try:
            async with Client(target, cache=None) as client:
                self._client = client
                self._ready.set()
                await self._closing.wait()
        except BaseException as exc:  # the server could not be started or reached, or broke
            self._error = exc
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s (%s): %s", self.server.id, self.server.name, _reason(exc))
        finally:
            self._client = None
            self._ready.set()
            if http is not None:
                await http.aclose()

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    text = str(exc) or type(exc).__name__
    return text[:300]


def result_text(result: Any) -> str:
    """A CallToolResult as text: its text blocks, else its structured content as JSON."""
    parts = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            parts.append(getattr(block.resource, "text", "") or f"[resource {getattr(block.resource, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpTools:
    """The MCP servers this orchestrator calls (the `ToolRunner` of the function executor)."""

    def __init__(self, memory: MemoryPort, default_timeout: float = 30.0) -> None:
        self.memory = memory
        self.default_timeout = default_timeout
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._servers: dict[tuple[str, str], tuple[float, memory_pb2.McpServer]] = {}
        self._lock = asyncio.Lock()

    async def server(self, tenant_id: str, server_id: str) -> memory_pb2.McpServer:
        """The registration (briefly cached); NotFound for unknown and other tenants' servers."""
        key = (tenant_id, server_id)
        hit = self._servers.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        server = await self.memory.GetMcpServer(memory_pb2.McpServerRef(tenant_id=tenant_id, server_id=server_id))
        self._servers[key] = (time.monotonic() + SERVER_CACHE_SECONDS, server)
        return server

    @asynccontextmanager
    async def _session(self, server: memory_pb2.McpServer) -> AsyncIterator[Client]:
        """An open session of `server`; closed (reopened next time) when the block fails on it."""
        key = (server.tenant_id, server.id)
        async with self._lock:
            session = self._sessions.get(key)
            if session is not None and (not session.alive or
                                        session.fingerprint != server.SerializeToString(deterministic=True)):
                self._sessions.pop(key)
                await session.close()  # a broken session, or the registration changed
                session = None
            if session is None:
                session = self._sessions[key] = _Session(server)
                await self._evict()
            session.used = time.monotonic()
        try:
            yield await session.client()
        except BaseException:
            if self._sessions.get(key) is session:
                self._sessions.pop(key)
            await session.close()
            raise

    async def _evict(self) -> None:
        while len(self._sessions) > MAX_SESSIONS:
            key = min(self._sessions, key=lambda k: self._sessions[k].used)
            await self._sessions.pop(key).close()

    async def call(self, tenant_id: str, spec: common_pb2.ToolSpec, args: dict[str, Any], max_chars: int) -> str:
        """Run the tool; its text (cut to the server's or `max_chars` limit). FunctionError when it fails."""
        try:
            server = await self.server(tenant_id, spec.server_id)
        except NotFound:
            raise FunctionError(f"{spec.name} failed: its MCP server {spec.server_id} is no longer registered") \
                from None
        except MnemoError as exc:
            raise FunctionError(f"{spec.name} failed: the MCP server's registration cannot be read ({exc})") \
                from None
        timeout = server.timeout_seconds or self.default_timeout
        limit = server.max_result_chars or max_chars
        started = time.perf_counter()
        outcome = "ok"
        with span("orchestrator.mcp_call", tracer="mnemo.orchestrator", attributes={
                "mnemo.tool": spec.name, "mnemo.mcp.server_id": server.id, "mnemo.mcp.server": server.name,
                "mnemo.mcp.transport": server.transport}) as s:
            try:
                async with self._session(server) as client:  # (opening it has its own timeout)
                    async with asyncio.timeout(timeout):
                        result = await client.call_tool(spec.name, args, read_timeout_seconds=timeout)
            except TimeoutError:
                outcome = "timeout"
                raise FunctionError(f"{spec.name} failed: the MCP server {server.name} did not answer within "
                                    f"{timeout:.0f} seconds") from None
            except Exception as exc:
                outcome = "unavailable"
                raise FunctionError(f"{spec.name} failed: the MCP server {server.name} is unavailable "
                                    f"({_reason(exc)})") from None
            finally:
                s.set_attribute("mnemo.outcome", outcome)
                metrics.MCP_CALLS.add(1, {"outcome": outcome})
                metrics.MCP_CALL_LATENCY.record(time.perf_counter() - started, {"outcome": outcome})
            text = result_text(result)
            if result.is_error:
                s.set_attribute("mnemo.outcome", "tool_error")
                raise FunctionError(f"{spec.name} failed: {truncate(text or 'the tool reported an error', limit, '')}")
            return truncate(text, limit, "the tool's output was longer")

    async def list_tools(self, tenant_id: str, server_id: str) -> list[common_pb2.ToolSpec]:
        """The server's tools as ToolSpecs (kind mcp); McpUnavailable when it cannot be asked."""
        server = await self.server(tenant_id, server_id)
        timeout = server.timeout_seconds or self.default_timeout
        try:
            async with self._session(server) as client, asyncio.timeout(timeout):
                tools, cursor = [], None
                for _ in range(100):
                    page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError:
            raise McpUnavailable(f"the MCP server {server.name} did not answer within {timeout:.0f} seconds") \
                from None
        except McpUnavailable as exc:
            raise McpUnavailable(f"the MCP server {server.name} is unavailable ({exc})") from None
        except Exception as exc:
            raise McpUnavailable(f"the MCP server {server.name} is unavailable ({_reason(exc)})") from None
        return [common_pb2.ToolSpec(name=t.name, description=t.description or t.title or "",
                                    parameters_json=json.dumps(t.input_schema), kind="mcp", server_id=server.id)
                for t in tools]

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
