"""Unary methods of our gRPC services over NATS request-reply: same protobuf messages, same status
codes, same servicer code.

Why: on small machines a grpc.aio unary call costs about 0.3 ms of CPU on each side (its poller
thread, HTTP/2 framing), a NATS request about 0.03 ms; the step loop makes several calls per step.
Internal callers therefore reach memory and llm-proxy over NATS (`MNEMO_RPC_TRANSPORT=nats`, the
default) and fall back to gRPC when nobody answers there (a gRPC-only server, NATS reconnecting) or
when a message exceeds NATS's max_payload. Streaming methods are gRPC only. The gRPC servers stay the
public contract (health, reflection, external clients).

Wire format: subject `mnemo.rpc.<group>.<service>.<Method>`, queue group `mnemo.<group>.<service>`
(replicas share the load); request and response bodies are the serialized protobufs; an error reply
carries the NATS services headers `Nats-Service-Error-Code` (the numeric gRPC status code) and
`Nats-Service-Error` (details), plus trailing metadata as `Mnemo-Trailer-<key>` headers. Requests
carry `Mnemo-Timeout-Ms` and the W3C trace headers. Each server also registers as a NATS service
(`$SRV.INFO`, `$SRV.STATS` discovery), one endpoint per method.

Liveness: a request carries `Mnemo-Progress-Ms`; while the call runs the server sends an empty
message with `Mnemo-Rpc-Progress` to the reply subject that often. A caller that hears nothing for
`QUIET_SECONDS` (its server was killed mid-call, or NATS lost the reply) gives up with `Unavailable`,
a retryable error, instead of waiting out the call's whole deadline.

Errors: `NatsRpcCaller` raises the domain errors of `mnemo.common.errors` (mapped by
`mnemo.common.status`), which is what services see through `mnemo.common.rpcclient.RpcClient`.
`NatsRpcStub` keeps the face of a generated gRPC stub for code written against one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc
import nats.errors
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from nats import micro
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER, Request
from opentelemetry.trace import SpanKind, Status, StatusCode

from mnemo.common import status, telemetry
from mnemo.common.errors import DeadlineExceeded, MnemoError, Unavailable
from mnemo.common.grpcutil import SERVER_ERROR_CODES
from mnemo.v1 import llm_pb2, memory_pb2, tools_pb2

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "Mnemo-Timeout-Ms"
TRAILER_PREFIX = "Mnemo-Trailer-"
FALLBACK_HEADER = "Mnemo-Rpc-Fallback"   # "grpc": the reply did not fit; ask again over gRPC
DEFAULT_TIMEOUT = 60.0
PROGRESS_HEADER = "Mnemo-Progress-Ms"      # request: send progress this often (milliseconds)
PROGRESS_REPLY_HEADER = "Mnemo-Rpc-Progress"  # reply: the call is still running
QUIET_SECONDS = 10.0   # a caller that hears nothing for this long takes its server for dead
NO_RESPONDERS_STATUS = "503"


MEMORY = "memory"
LLM = "llm"
TOOLS = "tools"
MEMORY_SERVICE: ServiceDescriptor = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"]
LLM_SERVICE: ServiceDescriptor = llm_pb2.DESCRIPTOR.services_by_name["LLMService"]
TOOL_SERVICE: ServiceDescriptor = tools_pb2.DESCRIPTOR.services_by_name["ToolService"]
# spans name the serving Mnemo service
_TRACERS = {MEMORY: "mnemo.memory", LLM: "mnemo.llm_proxy", TOOLS: "mnemo.orchestrator"}


def rpc_subject(group: str, service: str, method: str) -> str:
    return f"mnemo.rpc.{group}.{service}.{method}"


def _unary_methods(descriptor: ServiceDescriptor) -> dict[str, tuple[type[Message], type[Message]]]:
    return {m.name: (GetMessageClass(m.input_type), GetMessageClass(m.output_type))
            for m in descriptor.methods if not m.client_streaming and not m.server_streaming}


def unary_method_names(descriptor: ServiceDescriptor) -> list[str]:
    return list(_unary_methods(descriptor))


def response_classes(descriptor: ServiceDescriptor) -> dict[str, type[Message]]:
    """Each unary method's response class, by method name."""
    return {name: response for name, (_, response) in _unary_methods(descriptor).items()}


# ---- server ------------------------------------------------------------------------------------

class RpcAbort(Exception):
    """Raised by `NatsServicerContext.abort`: ends the call with this status."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing = trailing


class NatsServicerContext:
    """What our servicers use of grpc.aio.ServicerContext, for a call that came over NATS."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = headers
        timeout_ms = headers.get(TIMEOUT_HEADER)
        self._deadline = time.monotonic() + int(timeout_ms) / 1000 if timeout_ms and timeout_ms.isdigit() else None

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: tuple[tuple[str, str], ...] = ()) -> NoReturn:
        raise RpcAbort(code, details, tuple(trailing_metadata))

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((k.lower(), v) for k, v in self._headers.items())


class NatsRpcServer:
    """Serves the unary methods of `servicer` (a generated gRPC servicer) on NATS."""

    def __init__(self, nc: Any, group: str, service: str, descriptor: ServiceDescriptor, servicer: Any,
                 version: str = "1.0.0") -> None:
        self.nc = nc
        self.group = group
        self.service = service
        self.full_name = descriptor.full_name
        self.servicer = servicer
        self.version = version
        self.methods = _unary_methods(descriptor)
        self._micro: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._micro = await micro.add_service(
            self.nc, name=f"mnemo-{self.service}", version=self.version,
            description=f"{self.full_name} unary methods over NATS request-reply",
            metadata={"group": self.group}, queue_group=f"mnemo.{self.group}.{self.service}")
        for name, (request_cls, _) in self.methods.items():
            await self._micro.add_endpoint(name=name, subject=rpc_subject(self.group, self.service, name),
                                           handler=self._handler(name, request_cls))
        from mnemo.common import localrpc  # it builds on this module

        localrpc.serve(self.group, self.service, self.servicer)

    async def stop(self) -> None:
        """Stop taking calls; calls already running finish (a caller's retry finds another replica)."""
        from mnemo.common import localrpc

        localrpc.withdraw(self.group, self.service, self.servicer)
        if self._micro is not None:
            try:
                await self._micro.stop()
            except Exception as exc:
                log.debug("rpc service stop: %s", exc)
            self._micro = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)

    def _handler(self, name: str, request_cls: type[Message]) -> Callable[[Request], Awaitable[None]]:
        method = getattr(self.servicer, name)

        async def handle(req: Request) -> None:
            # A subscription's callback runs one message at a time: each call gets its own task.
            task = asyncio.get_running_loop().create_task(self._serve(name, method, request_cls, req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return handle

    async def _serve(self, name: str, method: Callable[..., Awaitable[Message]], request_cls: type[Message],
                     req: Request) -> None:
        headers = req.headers or {}
        ctx = NatsServicerContext(headers)
        rpc_name = f"{self.full_name}/{name}"
        ticker = _Progress.start(self.nc, req, headers.get(PROGRESS_HEADER))
        try:
            await self._answer(name, method, request_cls, req, ctx, headers, rpc_name)
        finally:
            if ticker is not None:
                ticker.stop()

    async def _answer(self, name: str, method: Callable[..., Awaitable[Message]], request_cls: type[Message],
                      req: Request, ctx: NatsServicerContext, headers: Mapping[str, str], rpc_name: str) -> None:
        with telemetry.span(rpc_name, tracer=_TRACERS.get(self.service, f"mnemo.{self.service}"), parent=headers,
                            kind=SpanKind.SERVER, attributes={"rpc.system": "nats", "rpc.service": self.full_name,
                                                              "rpc.method": name}) as s:
            code, details, extra = grpc.StatusCode.OK, "", {}
            try:
                try:
                    request = request_cls.FromString(req.data)
                except DecodeError:
                    await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable {request_cls.__name__}")
                result = await method(request, ctx)
                body = result.SerializeToString()
                if len(body) <= self.nc.max_payload:
                    await req.respond(body)
                else:  # the caller asks again over gRPC
                    code, details = grpc.StatusCode.RESOURCE_EXHAUSTED, \
                        f"reply of {len(body)} bytes exceeds the NATS max_payload"
                    extra = {FALLBACK_HEADER: "grpc"}
            except RpcAbort as exc:
                code, details = exc.code, exc.details
                extra = {f"{TRAILER_PREFIX}{k}": v for k, v in exc.trailing}
            except MnemoError as exc:  # a servicer may raise domain errors instead of aborting
                code, details = status.grpc_code(exc), str(exc)
                extra = {f"{TRAILER_PREFIX}{k}": v for k, v in status.trailer(exc)}
            except Exception as exc:
                code, details = grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__})"
                log.exception("%s failed", rpc_name)
                s.record_exception(exc)
            if code != grpc.StatusCode.OK:
                await _quiet_reply(req.respond_error(str(code.value[0]), details, headers=extra))
            s.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERROR_CODES:
                s.set_status(Status(StatusCode.ERROR, details or code.name))


class _Progress:
    """Sends `PROGRESS_REPLY_HEADER` messages to a call's reply subject every `interval` seconds while
    it runs (timer callbacks: nothing at all for a call that ends sooner)."""

    def __init__(self, nc: Any, reply: str, interval: float) -> None:
        self.nc, self.reply, self.interval = nc, reply, interval
        self.loop = asyncio.get_running_loop()
        self.handle = self.loop.call_later(interval, self._tick)
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, nc: Any, req: Request, wanted: str | None) -> _Progress | None:
        reply = req._msg.reply
        if not wanted or not wanted.isdigit() or not reply:
            return None
        return cls(nc, reply, max(0.05, int(wanted) / 1000))

    def _tick(self) -> None:
        self.task = self.loop.create_task(_quiet_reply(
            self.nc.publish(self.reply, b"", headers={PROGRESS_REPLY_HEADER: "1"})))
        self.handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        self.handle.cancel()


async def _quiet_reply(coro: Awaitable[None]) -> None:
    try:
        await coro
    except Exception as exc:
        log.debug("rpc reply not sent: %s", exc)


# ---- client ------------------------------------------------------------------------------------

class UseGrpc(Exception):
    """This call goes (again) over gRPC: nobody answers on NATS, or the message does not fit."""


class _Pending:
    __slots__ = ("future", "heard")

    def __init__(self, future: asyncio.Future[Any], heard: float) -> None:
        self.future = future
        self.heard = heard   # time.monotonic() of the last word from the server


class NatsRpcCaller:
    """Unary calls of one service over NATS request-reply, raising domain errors (`UseGrpc` when
    the call must go over gRPC instead). Replies arrive on one wildcard inbox subscription (as for
    nats-py's own requests), where progress messages keep a running call alive (module docstring)."""

    def __init__(self, nc: Any, group: str, service: str, descriptor: ServiceDescriptor,
                 quiet: float = QUIET_SECONDS) -> None:
        self.nc = nc
        self.quiet = quiet
        self.methods = {name: (rpc_subject(group, service, name), response_cls)
                        for name, (_, response_cls) in _unary_methods(descriptor).items()}
        self._prefix: str | None = None
        self._subscribing = asyncio.Lock()
        self._pending: dict[str, _Pending] = {}
        self._seq = 0

    async def _inbox(self) -> str:
        if self._prefix is None:
            async with self._subscribing:
                if self._prefix is None:
                    prefix = self.nc.new_inbox() + "."
                    await self.nc.subscribe(prefix + "*", cb=self._on_reply)
                    self._prefix = prefix
        return self._prefix

    async def _on_reply(self, msg: Any) -> None:
        pending = self._pending.get(msg.subject[len(self._prefix or ""):])
        if pending is None:
            return
        if msg.headers and PROGRESS_REPLY_HEADER in msg.headers:
            pending.heard = time.monotonic()
        elif not pending.future.done():
            pending.future.set_result(msg)

    async def call(self, subject: str, response_cls: type[Message], request: Message,
                   timeout: float | None) -> Message:
        nc = self.nc
        body = request.SerializeToString()
        if not nc.is_connected or len(body) > nc.max_payload:
            raise UseGrpc
        timeout = timeout or DEFAULT_TIMEOUT
        headers = telemetry.inject()
        headers[TIMEOUT_HEADER] = str(int(timeout * 1000))
        headers[PROGRESS_HEADER] = str(max(50, int(self.quiet * 1000 / 3)))
        try:
            prefix = await self._inbox()
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.ConnectionDrainingError, nats.errors.OutboundBufferLimitError):
            raise UseGrpc from None
        self._seq += 1
        token = str(self._seq)
        began = time.monotonic()
        pending = _Pending(asyncio.get_running_loop().create_future(), began)
        self._pending[token] = pending
        try:
            await nc.publish(subject, body, reply=prefix + token, headers=headers)
            msg = await self._wait(pending, subject, began + timeout, timeout)
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.ConnectionDrainingError, nats.errors.OutboundBufferLimitError):
            raise UseGrpc from None
        finally:
            del self._pending[token]
        reply_headers = msg.headers
        if reply_headers and reply_headers.get("Status") == NO_RESPONDERS_STATUS and not msg.data:
            raise UseGrpc
        if reply_headers and ERROR_CODE_HEADER in reply_headers:
            if reply_headers.get(FALLBACK_HEADER) == "grpc":
                raise UseGrpc
            number = reply_headers[ERROR_CODE_HEADER]
            code = status.code_of_number(int(number) if number.isdigit() else -1)
            trailing = ((k[len(TRAILER_PREFIX):].lower(), v) for k, v in reply_headers.items()
                        if k.startswith(TRAILER_PREFIX))
            raise status.from_status(code, reply_headers.get(ERROR_HEADER, ""), trailing)
        return response_cls.FromString(msg.data)

    async def _wait(self, pending: _Pending, subject: str, deadline: float, timeout: float) -> Any:
        """The reply; DeadlineExceeded at the deadline, Unavailable after `quiet` seconds of silence."""
        while True:
            now = time.monotonic()
            until = min(deadline, pending.heard + self.quiet)
            try:
                return await asyncio.wait_for(asyncio.shield(pending.future), max(0.0, until - now))
            except TimeoutError:
                now = time.monotonic()
                if now >= deadline:
                    raise DeadlineExceeded(f"{subject}: no reply in {timeout:.1f}s") from None
                if now >= pending.heard + self.quiet:
                    raise Unavailable(f"{subject}: no word from the server for {self.quiet:.0f}s "
                                      "(it stopped or was cut off); the call may or may not have run") from None


class NatsRpcStub:
    """A drop-in for a generated gRPC stub whose unary methods go over NATS (falling back to
    `grpc_stub`), raising `grpc.aio.AioRpcError` like the stub it replaces; anything else (streaming
    methods) is `grpc_stub`'s. Services use `mnemo.common.rpcclient.RpcClient` instead, which speaks
    domain errors; this shape is for code written against gRPC stubs."""

    def __init__(self, nc: Any, group: str, service: str, descriptor: ServiceDescriptor,
                 grpc_stub: Any = None) -> None:
        self._grpc = grpc_stub
        caller = NatsRpcCaller(nc, group, service, descriptor)
        for name, (subject, response_cls) in caller.methods.items():
            fallback = getattr(grpc_stub, name, None) if grpc_stub is not None else None
            setattr(self, name, self._method(caller, subject, response_cls, fallback))

    def __getattr__(self, name: str) -> Any:  # streaming methods
        if self._grpc is None:
            raise AttributeError(name)
        return getattr(self._grpc, name)

    @staticmethod
    def _method(caller: NatsRpcCaller, subject: str, response_cls: type[Message],
                fallback: Callable[..., Awaitable[Message]] | None) -> Callable[..., Awaitable[Message]]:
        async def call(request: Message, timeout: float | None = None,
                       metadata: Any = None, **kwargs: Any) -> Message:
            try:
                return await caller.call(subject, response_cls, request, timeout)
            except MnemoError as err:
                raise status.to_rpc_error(err) from None
            except UseGrpc:
                if fallback is None:
                    raise status.to_rpc_error(Unavailable(f"no server answers {subject} on NATS")) from None
                return await fallback(request, timeout=timeout, metadata=metadata, **kwargs)
        return call
