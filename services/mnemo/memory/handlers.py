"""The memory service's handler plumbing: a span per operation and domain errors as gRPC statuses
(shared by every servicer module of the service)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import nats.errors
import nats.js.errors

from mnemo.common import status
from mnemo.common.errors import MnemoError
from mnemo.common.telemetry import span
from mnemo.memory.search.base import DimensionMismatch
from mnemo.v1 import common_pb2

log = logging.getLogger("mnemo.memory.server")
T = TypeVar("T")


def _ref_of(request: Any) -> tuple[str, str]:
    ref = getattr(request, "ref", None)
    if ref is not None and isinstance(ref, common_pb2.AgentRef):
        return ref.tenant_id, ref.agent_id
    if isinstance(request, common_pb2.AgentRef):
        return request.tenant_id, request.agent_id
    return getattr(request, "tenant_id", ""), ""


def _count(result: Any) -> int | None:
    for name in ("hits", "agents", "templates", "checkpoints", "ids", "removed", "blocks", "queue", "servers"):
        if hasattr(result, name):
            try:
                return len(getattr(result, name))
            except TypeError:
                continue
    return None


def rpc(op: str) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """A unary handler: a span named after the operation, domain errors → gRPC statuses."""

    def wrap(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
            tenant_id, agent_id = _ref_of(request)
            with span(f"memory.{op}", tracer="mnemo.memory",
                      attributes={"mnemo.tenant_id": tenant_id, "mnemo.agent_id": agent_id}) as s:
                try:
                    result = await fn(self, request, context)
                except Exception as exc:
                    await _abort(context, s, exc)
                n = _count(result)
                if n is not None:
                    s.set_attribute("mnemo.result_count", n)
                return result
        return handler
    return wrap


def _status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, MnemoError):
        return status.grpc_code(exc), str(exc)
    if isinstance(exc, DimensionMismatch):
        return grpc.StatusCode.FAILED_PRECONDITION, f"embedding dimension mismatch: {exc}"
    if isinstance(exc, (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.NoServersError,
                        nats.js.errors.ServiceUnavailableError)):
        return grpc.StatusCode.UNAVAILABLE, f"state store unavailable: {type(exc).__name__}"
    log.exception("memory operation failed", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"


async def _abort(context: grpc.aio.ServicerContext, s: Any, exc: BaseException) -> None:
    """End the RPC with the status matching `exc` (domain errors carry their own)."""
    code, details = _status_of(exc)
    s.set_attribute("mnemo.error", code.name)
    await context.abort(code, status.clip_details(details))
