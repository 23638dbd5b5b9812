"""How one Mnemo service calls another: `RpcClient`, the adapter behind the typed ports.

A client has one awaitable per unary method of the service (`await client.GetContext(ref)`), named
as in the proto contract, and it:
- goes over NATS request-reply first (`MNEMO_RPC_TRANSPORT=nats`, the default; see
  `mnemo.common.natsrpc`), over gRPC when NATS has no server for the call or the message does not fit,
  or over gRPC alone;
- applies a default deadline when the caller gives none;
- raises the domain errors of `mnemo.common.errors`, whichever transport carried the call;
- retries the methods declared idempotent while the callee is unavailable (one `Backoff` policy).

Streaming methods are the gRPC stub's own (they run over gRPC only); map their errors with
`mnemo.common.status.from_rpc_error`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from mnemo.common import localrpc, natsrpc, status
from mnemo.common.errors import Unavailable
from mnemo.common.retry import Backoff

DEFAULT_TIMEOUT = 60.0
# A callee restarting (or a replica handing over) answers again within a fraction of a second.
UNAVAILABLE_RETRY = Backoff(base=0.05, cap=0.5, attempts=3)

# Reads that are safe to repeat (the retry policy applies to them only).
MEMORY_IDEMPOTENT = frozenset({
    "GetAgent", "ListAgents", "GetContext", "GetCoreMemory", "GetCounts", "SearchRecall",
    "SearchArchival", "GetTemplate", "ListTemplates", "ListCheckpoints", "GetMcpServer", "ListMcpServers",
    "GetSharedBlock", "ListSharedBlocks", "ListSharedBlockAgents", "FindArchivalDuplicates"})
LLM_IDEMPOTENT = frozenset({"ListModels", "CountTokens"})  # not Embed: the proxy retries providers itself

UnaryCall = Callable[..., Awaitable[Any]]


class RpcClient:
    """The unary methods of one service as domain calls (see the module docstring)."""

    def __init__(self, descriptor: ServiceDescriptor, grpc_stub: Any, *,
                 nats: natsrpc.NatsRpcCaller | None = None, local: localrpc.LocalRpcCaller | None = None,
                 timeout: float = DEFAULT_TIMEOUT, idempotent: Collection[str] = (),
                 retry: Backoff = UNAVAILABLE_RETRY) -> None:
        self._grpc = grpc_stub
        self.full_name = descriptor.full_name
        responses = natsrpc.response_classes(descriptor)
        for name in responses:
            call = self._unary(name, nats, timeout)
            if local is not None:
                call = _local_first(local, name, responses[name], call, timeout)
            if name in idempotent:
                call = _retried(call, retry)
            setattr(self, name, call)

    def __getattr__(self, name: str) -> Any:  # streaming methods: the gRPC stub's
        if self._grpc is None:
            raise AttributeError(name)
        return getattr(self._grpc, name)

    def _unary(self, name: str, nats: natsrpc.NatsRpcCaller | None, default_timeout: float) -> UnaryCall:
        grpc_method = getattr(self._grpc, name, None) if self._grpc is not None else None

        async def over_grpc(request: Message, timeout: float | None) -> Any:
            if grpc_method is None:
                raise Unavailable(f"no server answers {self.full_name}/{name}")
            try:
                return await grpc_method(request, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise status.from_rpc_error(exc) from None

        if nats is None:
            async def call(request: Message, timeout: float | None = None) -> Any:
                return await over_grpc(request, timeout or default_timeout)
            return call

        subject, response_cls = nats.methods[name]

        async def call_nats_first(request: Message, timeout: float | None = None) -> Any:
            timeout = timeout or default_timeout
            try:
                return await nats.call(subject, response_cls, request, timeout)
            except natsrpc.UseGrpc:
                return await over_grpc(request, timeout)
        return call_nats_first


def _local_first(local: localrpc.LocalRpcCaller, name: str, response_cls: type[Message], remote: UnaryCall,
                 default_timeout: float) -> UnaryCall:
    """In-process when this process serves the method (the combined layout), else `remote`."""
    async def call(request: Message, timeout: float | None = None) -> Any:
        try:
            return await local.call(name, response_cls, request, timeout or default_timeout)
        except localrpc.NotServedHere:
            return await remote(request, timeout)
    return call


def _retried(call: UnaryCall, policy: Backoff) -> UnaryCall:
    async def retried(request: Message, timeout: float | None = None) -> Any:
        try:  # the first attempt without the retry machinery: it is the hot path
            return await call(request, timeout)
        except Unavailable as err:
            failure = err
        rest = dataclasses.replace(policy, attempts=None if policy.attempts is None else policy.attempts - 1)
        if rest.attempts == 0:
            raise failure
        await asyncio.sleep(policy.delay(1, failure.retry_after))
        async for attempt in rest.retrying(_unavailable):
            with attempt:
                return await call(request, timeout)
        raise AssertionError("unreachable: retrying() re-raises")  # pragma: no cover
    return retried


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, Unavailable)


def service_client(settings: Any, nc: Any, group: str, descriptor: ServiceDescriptor, grpc_stub: Any,
                   idempotent: Collection[str]) -> RpcClient:
    """A client in-process first (when `settings.rpc_local` and this process serves it), then over NATS
    (when `settings.rpc_transport` is "nats") with gRPC as fallback."""
    caller = None
    if settings.rpc_transport == "nats" and nc is not None:
        caller = natsrpc.NatsRpcCaller(nc, settings.rpc_group, group, descriptor)
    local = localrpc.LocalRpcCaller(settings.rpc_group, group, descriptor.full_name) if settings.rpc_local else None
    return RpcClient(descriptor, grpc_stub, nats=caller, local=local, idempotent=idempotent)


def memory_client(settings: Any, nc: Any, grpc_stub: Any) -> RpcClient:
    """mnemo.v1.MemoryService for internal callers."""
    return service_client(settings, nc, natsrpc.MEMORY, natsrpc.MEMORY_SERVICE, grpc_stub, MEMORY_IDEMPOTENT)


def llm_client(settings: Any, nc: Any, grpc_stub: Any) -> RpcClient:
    """mnemo.v1.LLMService for internal callers."""
    return service_client(settings, nc, natsrpc.LLM, natsrpc.LLM_SERVICE, grpc_stub, LLM_IDEMPOTENT)


def tool_client(settings: Any, nc: Any, grpc_stub: Any) -> RpcClient:
    """mnemo.v1.ToolService (the orchestrators) for the gateway."""
    return service_client(settings, nc, natsrpc.TOOLS, natsrpc.TOOL_SERVICE, grpc_stub, ())
