"""gRPC plumbing: servers with health checking, reflection and trace propagation; client channels."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from mnemo.common import telemetry

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.so_reuseport", 0),
]


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """Starts a SERVER span per RPC, parented by the caller's `traceparent` metadata."""

    def __init__(self, service: str) -> None:
        self._tracer = trace.get_tracer(f"mnemo.{service}")

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc."):
            return handler
        method = details.method
        carrier = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        tracer = self._tracer

        rpc_service, _, rpc_method = method.lstrip("/").rpartition("/")

        def _start() -> tuple[trace.Span, object]:
            parent = telemetry.extract(carrier)
            s = tracer.start_span(method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
                                  attributes={"rpc.system": "grpc", "rpc.service": rpc_service,
                                              "rpc.method": rpc_method})
            token = otel_context.attach(trace.set_span_in_context(s, parent))
            return s, token

        def _end(s: trace.Span, token: object, exc: BaseException | None,
                 context: grpc.aio.ServicerContext | None = None) -> None:
            _finish_server_span(s, exc, context)
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                pass
            s.end()

        if handler.unary_unary:
            inner = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                s, token = _start()
                try:
                    result = await inner(request, context)
                except BaseException as exc:
                    _end(s, token, exc, context)
                    raise
                _end(s, token, None, context)
                return result

            return grpc.unary_unary_rpc_method_handler(uu, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_traced_stream(handler.unary_stream, _start, _end),
                                                        handler.request_deserializer,
                                                        handler.response_serializer)
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def su(request_iter: Any, context: grpc.aio.ServicerContext) -> Any:
                s, token = _start()
                try:
                    result = await inner_su(request_iter, context)
                except BaseException as exc:
                    _end(s, token, exc, context)
                    raise
                _end(s, token, None, context)
                return result

            return grpc.stream_unary_rpc_method_handler(su, handler.request_deserializer,
                                                        handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(_traced_stream(handler.stream_stream, _start, _end),
                                                         handler.request_deserializer,
                                                         handler.response_serializer)
        return handler


def _traced_stream(inner: Callable[..., Any], start: Callable[[], tuple[trace.Span, object]],
                   end: Callable[..., None]) -> Callable[..., Any]:
    """Wrap a response-streaming handler in its span: an async generator, or a coroutine that
    writes with `context.write()` (the wrapper keeps the same style: gRPC forbids mixing them)."""
    if inspect.isasyncgenfunction(inner):
        async def gen(request: Any, context: grpc.aio.ServicerContext) -> Any:
            s, token = start()
            try:
                async for item in inner(request, context):
                    yield item
            except BaseException as exc:
                end(s, token, exc, context)
                raise
            end(s, token, None, context)
        return gen

    async def coro(request: Any, context: grpc.aio.ServicerContext) -> Any:
        s, token = start()
        try:
            result = await inner(request, context)
        except BaseException as exc:
            end(s, token, exc, context)
            raise
        end(s, token, None, context)
        return result
    return coro


# Server-side gRPC codes that mean the server failed (OTel RPC semantic conventions); any other
# non-OK code (INVALID_ARGUMENT, NOT_FOUND, ...) is the caller's mistake, not a server span error.
SERVER_ERROR_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL,
                       grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS}


def _finish_server_span(s: trace.Span, exc: BaseException | None,
                        context: grpc.aio.ServicerContext | None) -> None:
    """Set the gRPC status code on a server span; mark it failed for server errors only."""
    if isinstance(exc, (StopAsyncIteration, GeneratorExit)):
        exc = None
    code: grpc.StatusCode | None = None
    try:
        code = context.code() if context is not None else None
    except Exception:
        code = None
    if isinstance(code, int):
        code = next((c for c in grpc.StatusCode if c.value[0] == code), None)
    if code is None:
        if exc is None:
            code = grpc.StatusCode.OK
        elif isinstance(exc, asyncio.CancelledError):
            code = grpc.StatusCode.CANCELLED  # the caller went away: not a server failure
        else:
            code = grpc.StatusCode.UNKNOWN
    s.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_ERROR_CODES or (exc is not None and code == grpc.StatusCode.UNKNOWN):
        if exc is not None:
            s.record_exception(exc)
        details = ""
        try:
            details = (context.details() or "") if context is not None else ""
        except Exception:
            details = ""
        s.set_status(Status(StatusCode.ERROR, details or (str(exc) if exc else code.name)))
    elif code != grpc.StatusCode.OK:
        s.set_attribute("rpc.grpc.status_detail", code.name)


class _TraceClientInterceptor:
    """Adds the current trace context to every outgoing call's metadata."""

    @staticmethod
    def _details(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        trace_md = telemetry.grpc_metadata()
        names = {k for k, _ in trace_md}
        md = [(k, v) for k, v in (details.metadata or []) if k not in names]
        md.extend(trace_md)
        # The stub wants a Metadata; the call only does tuple(metadata), so a list of pairs is
        # what grpc accepts too, without building a Metadata per call.
        return grpc.aio.ClientCallDetails(details.method, details.timeout, md,  # type: ignore[arg-type]
                                          details.credentials, details.wait_for_ready)


class TraceUnaryUnary(_TraceClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)


class TraceUnaryStream(_TraceClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self._details(details), request)


class TraceStreamUnary(_TraceClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


class TraceStreamStream(_TraceClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation, details, request_iterator):
        return await continuation(self._details(details), request_iterator)


def client_channel(target: str) -> grpc.aio.Channel:
    """An insecure aio channel to an internal service, propagating trace context."""
    return grpc.aio.insecure_channel(
        target,
        options=_OPTIONS,
        interceptors=[TraceUnaryUnary(), TraceUnaryStream(), TraceStreamUnary(), TraceStreamStream()],
    )


class GrpcServer:
    """An aio gRPC server with health checking (per service and overall) and reflection."""

    def __init__(self, service: str, host: str, port: int,
                 interceptors: Iterable[grpc.aio.ServerInterceptor] = ()) -> None:
        self.server = grpc.aio.server(
            interceptors=[TracingServerInterceptor(service), *interceptors], options=_OPTIONS)
        self.health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._names: list[str] = [health.SERVICE_NAME]
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        self.address = f"{host}:{self.port}"

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Register a servicer under its full name.

        E.g. add(memory_pb2_grpc.add_MemoryServiceServicer_to_server, s, "mnemo.v1.MemoryService").
        """
        register(servicer, self.server)
        self._names.append(full_name)

    async def start(self) -> None:
        reflection.enable_server_reflection([*self._names, reflection.SERVICE_NAME], self.server)
        await self.server.start()
        for name in [*self._names, ""]:
            await _set_status(self.health, name, health_pb2.HealthCheckResponse.SERVING)

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in [*self._names, ""]:
            await _set_status(self.health, name, status)

    async def stop(self, grace: float = 2.0) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def _set_status(servicer: Any, name: str, status: int) -> None:
    result = servicer.set(name, status)
    if hasattr(result, "__await__"):
        await result


async def check_health(target: str, service: str = "", timeout: float = 1.0) -> bool:
    """True when the gRPC server at `target` reports SERVING."""
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
        return resp.status == health_pb2.HealthCheckResponse.SERVING
