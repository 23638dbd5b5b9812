"""MCP servers registered by tenants, in the KV bucket `mnemo_mcp_servers`, key `<tenant>.<server id>`.

Only records: the orchestrators connect to the servers (mnemo.orchestrator.mcp_client). Who may
register what (a stdio command runs on the server) is the gateway's rule; here every record is
checked for shape and scoped by tenant.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mnemo.common import ids
from mnemo.common.errors import InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.memory.store import check_ref
from mnemo.v1 import memory_pb2

TRANSPORTS = ("stdio", "http")
MAX_SERVERS_PER_TENANT = 100
MAX_FIELD_CHARS = 4_000
MAX_ITEMS = 64
MAX_TIMEOUT_SECONDS = 3600.0


def check_server(server: memory_pb2.McpServer) -> None:
    """InvalidArgument for a record that cannot describe a server."""
    if not server.name or len(server.name) > 200:
        raise InvalidArgument("name: 1 to 200 characters")
    if server.transport not in TRANSPORTS:
        raise InvalidArgument(f"transport must be one of {', '.join(TRANSPORTS)}")
    if server.transport == "stdio":
        if not server.command.strip():
            raise InvalidArgument("a stdio server needs its command")
        if server.url or server.headers:
            raise InvalidArgument("url and headers are for http servers")
    else:
        parts = urlsplit(server.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument(f"url must be an http(s) URL, got {server.url[:200]!r}")
        if server.command or server.args or server.env:
            raise InvalidArgument("command, args and env are for stdio servers")
    texts = [server.command, server.url, *server.args, *server.env, *server.env.values(), *server.headers,
             *server.headers.values()]
    if any(len(t) > MAX_FIELD_CHARS or "\x00" in t for t in texts):
        raise InvalidArgument(f"fields must be at most {MAX_FIELD_CHARS} characters, without NUL")
    if max(len(server.args), len(server.env), len(server.headers)) > MAX_ITEMS:
        raise InvalidArgument(f"at most {MAX_ITEMS} args, env variables and headers")
    if not 0 <= server.timeout_seconds <= MAX_TIMEOUT_SECONDS:  # (NaN fails too)
        raise InvalidArgument(f"timeout_seconds must be between 0 and {MAX_TIMEOUT_SECONDS:.0f}")
    if server.max_result_chars < 0:
        raise InvalidArgument("max_result_chars must be >= 0")


class McpServers:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, server: memory_pb2.McpServer) -> memory_pb2.McpServer:
        """Register (no id: a new one) or replace a server of the tenant."""
        check_ref(server.tenant_id)
        check_server(server)
        out = memory_pb2.McpServer()
        out.CopyFrom(server)
        if out.id:
            previous = await self.get(out.tenant_id, out.id)
            out.created_at = previous.created_at
        else:
            if len(await self._ids(out.tenant_id)) >= MAX_SERVERS_PER_TENANT:
                raise InvalidArgument(f"at most {MAX_SERVERS_PER_TENANT} MCP servers per tenant")
            out.id = ids.new_id("mcp")
            out.created_at = ids.now_iso()
        await self.kv.put(f"{out.tenant_id}.{out.id}", out.SerializeToString())
        return out

    async def get(self, tenant_id: str, server_id: str) -> memory_pb2.McpServer:
        check_ref(tenant_id)
        if not ids.is_token(server_id):
            raise NotFound(f"MCP server {server_id!r} not found")
        try:
            entry = await self.kv.get(f"{tenant_id}.{server_id}")
        except KeyNotFoundError:
            raise NotFound(f"MCP server {server_id!r} not found") from None
        if not entry.value:
            raise NotFound(f"MCP server {server_id!r} not found")
        return memory_pb2.McpServer.FromString(entry.value)

    async def all(self, tenant_id: str) -> list[memory_pb2.McpServer]:
        check_ref(tenant_id)
        return [memory_pb2.McpServer.FromString(e.value)
                async for e in live_entries(self.kv, f"{tenant_id}.*") if e.value]

    async def delete(self, tenant_id: str, server_id: str) -> None:
        await self.get(tenant_id, server_id)  # NotFound for unknown and other tenants' servers
        await self.kv.purge(f"{tenant_id}.{server_id}")

    async def _ids(self, tenant_id: str) -> list[str]:
        return [e.key async for e in live_entries(self.kv, f"{tenant_id}.*", meta_only=True)]
