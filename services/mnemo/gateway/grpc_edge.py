"""The gRPC edge of the gateway: authentication, malformed requests and the one mapping of its
failures to gRPC status, as decorators of a servicer's handlers, and handler registration that
lets a request that does not parse reach its handler."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, Protocol

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from mnemo.common import status
from mnemo.common.errors import MnemoError
from mnemo.gateway.deps import GatewayContext, authenticate
from mnemo.gateway.errors import ApiError
from mnemo.gateway.tenants import Principal


class HasContext(Protocol):
    ctx: GatewayContext


# What a handler may raise that ends the call with a status (anything else is a bug: UNKNOWN).
FAILURES = (ApiError, MnemoError)


class Malformed:
    """A request that does not parse as its message type (grpc would answer UNKNOWN): its reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def parse_or_malformed(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Malformed(f"malformed request: {exc}")
    return deserialize


def malformed_error(exc: DecodeError) -> ApiError:
    return ApiError(400, f"malformed request: {exc}")


async def abort(context: grpc.aio.ServicerContext, exc: ApiError | MnemoError) -> NoReturn:
    """End the call with the status of `exc`: the one mapping of the gateway's failures to gRPC."""
    err = exc if isinstance(exc, ApiError) else ApiError.from_error(exc)
    if "Retry-After" in err.headers:  # rate limited
        context.set_trailing_metadata((("retry-after", err.headers["Retry-After"]),))
    await context.abort(err.grpc_code, status.clip_details(err.text))
    raise AssertionError("unreachable: abort raises")


class RequestStream:
    """The requests of a client-streaming call, read once, with what the handler left unread
    drainable before the call ends with an error.

    A server that ends a call while the client is still writing makes grpcio's asyncio client drop
    the status for "Internal error from Core" (grpc/grpc#36066): draining first (up to `limit_bytes`
    in all and DRAIN_SECONDS) lets the client finish writing and read the real reason. A stream
    past its limit is not drained: its status is the one about its size."""

    DRAIN_SECONDS = 5.0

    def __init__(self, requests: AsyncIterator[Any], limit_bytes: int) -> None:
        self._requests = aiter(requests)
        self.limit_bytes = limit_bytes
        self.seen_bytes = 0
        self.ended = False

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> Any:
        try:
            request = await anext(self._requests)
        except StopAsyncIteration:
            self.ended = True
            raise
        self.seen_bytes += request.ByteSize()
        return request

    async def drain(self) -> None:
        """Read and drop the rest of the stream, within the limits; never raises."""
        if self.ended:
            return
        # Whatever stops the drain (the client's garbage, a reset, the deadline) ends it quietly:
        # the call's status is about to be set by the caller.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.DRAIN_SECONDS):
                while self.seen_bytes <= self.limit_bytes:
                    await anext(self)


async def abort_stream(context: grpc.aio.ServicerContext, exc: ApiError | MnemoError,
                       requests: RequestStream) -> NoReturn:
    """`abort` for a client-streaming call: the rest of its requests are drained first."""
    await requests.drain()
    await abort(context, exc)


async def principal(ctx: GatewayContext, context: grpc.aio.ServicerContext,
                    requests: RequestStream | None = None) -> Principal:
    """The caller's principal, or the call ends UNAUTHENTICATED (a client stream's `requests` drained
    first)."""
    metadata = dict(context.invocation_metadata() or ())
    authorization = metadata.get("authorization")
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    try:
        return await authenticate(ctx, authorization)
    except ApiError as exc:
        if requests is not None:  # a client-streaming call
            await abort_stream(context, exc, requests)
        await abort(context, exc)


def unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate, run, and turn ApiError into the matching gRPC status."""

    @functools.wraps(fn)
    async def handler(self: HasContext, request: Any, context: grpc.aio.ServicerContext) -> Any:
        who = await principal(self.ctx, context)
        if type(request) is Malformed:
            await abort(context, ApiError(400, request.reason))
        try:
            return await fn(self, who.tenant_id, request, context)
        except FAILURES as exc:
            await abort(context, exc)
    return handler


def streaming(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """`unary` for server-streaming handlers."""

    @functools.wraps(fn)
    async def handler(self: HasContext, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        who = await principal(self.ctx, context)
        if type(request) is Malformed:
            await abort(context, ApiError(400, request.reason))
        try:
            async for item in fn(self, who.tenant_id, request, context):
                yield item
        except FAILURES as exc:
            await abort(context, exc)
    return handler


def register(servicer: Any, service: ServiceDescriptor, server: grpc.aio.Server) -> None:
    """Register `servicer` for `service` as the generated code does, except that a unary request that
    does not parse reaches the handler as `Malformed` (INVALID_ARGUMENT with the reason), not UNKNOWN."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        parse = GetMessageClass(method.input_type).FromString
        serialize = GetMessageClass(method.output_type).SerializeToString
        behavior = getattr(servicer, method.name)
        if method.client_streaming:  # chunks are parsed inside the handler, which answers for them
            make = grpc.stream_stream_rpc_method_handler if method.server_streaming \
                else grpc.stream_unary_rpc_method_handler
            handlers[method.name] = make(behavior, request_deserializer=parse, response_serializer=serialize)
        else:
            make = grpc.unary_stream_rpc_method_handler if method.server_streaming \
                else grpc.unary_unary_rpc_method_handler
            handlers[method.name] = make(behavior, request_deserializer=parse_or_malformed(parse),
                                         response_serializer=serialize)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
