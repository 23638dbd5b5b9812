"""The public surface of the gateway, enumerated from the code itself (not from a hand-kept list):
the REST routes of the FastAPI app and the methods of the gRPC AgentService descriptor.

Tests that must cover every route or RPC iterate these, so that a new one is covered (or makes the
test fail until it gets a recipe) without anyone remembering to add it.
"""

from __future__ import annotations

import asyncio
import contextlib
import string
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from google.protobuf.descriptor import MethodDescriptor

from mnemo.v1 import agent_pb2

# Path parameters that name something a tenant owns (its agents and what hangs off them, its templates).
TENANT_OWNED_PARAMS = frozenset({"agent_id", "checkpoint_id", "passage_id", "label", "name", "message_id",
                                 "source_id", "turn_id", "server_id", "block_id"})
# The routes that serve no tenant data (FastAPI's own documentation, health).
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz"})
ADMIN_PREFIX = "/v1/admin"


@dataclass(frozen=True)
class Route:
    """One (method, path) of the REST API."""

    method: str
    path: str
    params: tuple[str, ...]   # path parameters, in order
    body: Any                 # the pydantic body type, or None
    endpoint: str             # the handler's name

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def owned_params(self) -> tuple[str, ...]:
        return tuple(p for p in self.params if p in TENANT_OWNED_PARAMS)

    @property
    def admin(self) -> bool:
        return self.path.startswith(ADMIN_PREFIX)

    @property
    def public(self) -> bool:
        return self.path in PUBLIC_PATHS

    def url(self, **values: str) -> str:
        return self.path.format(**{p: values[p] for p in self.params})


def rest_routes(app: FastAPI) -> list[Route]:
    """Every (method, path) the app serves (HEAD aside), included routers flattened."""
    out: list[Route] = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path
        if path is None or ctx.methods is None:
            continue
        original = ctx.original_route
        body_field = getattr(original, "body_field", None) if isinstance(original, APIRoute) else None
        body = body_field.field_info.annotation if body_field is not None else None
        params = tuple(name for _, name, _, _ in string.Formatter().parse(path) if name)
        endpoint = getattr(ctx.endpoint, "__name__", "?")
        for method in sorted(ctx.methods - {"HEAD"}):
            out.append(Route(method, path, params, body, endpoint))
    return sorted(out, key=lambda r: (r.path, r.method))


AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]


def agent_service_methods() -> list[MethodDescriptor]:
    """Every method of the public gRPC AgentService."""
    return list(AGENT_SERVICE.methods)


def method_path(method: MethodDescriptor) -> str:
    return f"/{AGENT_SERVICE.full_name}/{method.name}"


async def client_streaming_call(multicallable: Any, messages: list[Any], *, metadata: Any, timeout: float,
                                server_streaming: bool, settle: float = 0.2) -> list[Any]:
    """A client-streaming call, written message by message: its answers (AioRpcError on a non-OK status).

    After the first message the client waits up to `settle` seconds for the server to end the call, and
    stops writing once it has: grpcio's aio client replaces the server's status with INTERNAL
    "Internal error from Core" when a write races the end of the call (grpc/grpc#36066).
    """
    call = multicallable(metadata=metadata, timeout=timeout)
    for i, message in enumerate(messages):
        if call.done():
            break
        try:
            await call.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            break
        if i == 0:
            await asyncio.wait([asyncio.ensure_future(call.code())], timeout=settle)
    if not call.done():
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.done_writing()
    if server_streaming:
        return [item async for item in call]
    return [await call]
