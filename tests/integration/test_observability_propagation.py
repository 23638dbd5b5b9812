"""Trace context through the real plumbing: gRPC interceptors (unary and streaming) and JetStream headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from nats.js.api import ConsumerConfig, StreamConfig
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mnemo.common import telemetry
from mnemo.common.grpcutil import GrpcServer, client_channel
from mnemo.common.natsutil import connect
from tests.fixtures_observability import by_name, span_exporter  # noqa: F401
from tests.helpers import eventually


def _identity(b: bytes) -> bytes:
    return b


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    with telemetry.span("echo.work", tracer="mnemo.echo"):
        if request == b"bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad input")
        if request == b"crash":
            raise RuntimeError("boom")
        return b"echo:" + request


async def _stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(3):
        with telemetry.span("echo.item", tracer="mnemo.echo", attributes={"i": i}):
            yield request + str(i).encode()


_slow_started = asyncio.Event()


async def _slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    _slow_started.set()
    await asyncio.Event().wait()  # until the caller cancels
    return b""


async def _written(request: bytes, context: grpc.aio.ServicerContext) -> None:
    for i in range(2):
        with telemetry.span("echo.write", tracer="mnemo.echo"):
            await context.write(request + str(i).encode())


async def _bidi(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        with telemetry.span("echo.bidi", tracer="mnemo.echo"):
            yield b"bidi:" + request


@pytest.fixture
async def echo_target() -> AsyncIterator[str]:
    server = GrpcServer("echo", "127.0.0.1", 0)
    server.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, _identity, _identity),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream, _identity, _identity),
        "Written": grpc.unary_stream_rpc_method_handler(_written, _identity, _identity),
        "Slow": grpc.unary_unary_rpc_method_handler(_slow, _identity, _identity),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi, _identity, _identity),
    }),))
    await server.start()
    yield server.address
    await server.stop(0)


async def test_unary_and_streaming_rpcs_continue_the_callers_trace(
        echo_target: str, span_exporter: InMemorySpanExporter) -> None:
    async with client_channel(echo_target) as ch:
        unary = ch.unary_unary("/test.Echo/Unary", request_serializer=_identity, response_deserializer=_identity)
        stream = ch.unary_stream("/test.Echo/Stream", request_serializer=_identity, response_deserializer=_identity)
        with telemetry.turn_scope(tenant_id="t1", agent_id="a1", turn_id="turn-1"):
            with telemetry.span("caller", tracer="mnemo.orchestrator") as caller:
                assert await unary(b"hi") == b"echo:hi"
                items = [item async for item in stream(b"s")]
    assert items == [b"s0", b"s1", b"s2"]

    spans = span_exporter.get_finished_spans()
    trace_id = caller.get_span_context().trace_id
    rpc = by_name(spans, "test.Echo/Unary")
    assert rpc.kind == SpanKind.SERVER and rpc.context.trace_id == trace_id
    assert rpc.parent is not None and rpc.parent.span_id == caller.get_span_context().span_id
    assert rpc.attributes["rpc.service"] == "test.Echo" and rpc.attributes["rpc.method"] == "Unary"
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    assert by_name(spans, "echo.work").parent.span_id == rpc.context.span_id

    streamed = by_name(spans, "test.Echo/Stream")
    assert streamed.parent.span_id == caller.get_span_context().span_id
    items_spans = [s for s in spans if s.name == "echo.item"]
    assert len(items_spans) == 3 and all(s.parent.span_id == streamed.context.span_id for s in items_spans)

    # mnemo.service from the tracer name; the turn scope crossed the wire as baggage.
    for s in (rpc, streamed, *items_spans):
        assert s.attributes["mnemo.service"] == "echo"
        assert (s.attributes["mnemo.tenant_id"], s.attributes["mnemo.agent_id"],
                s.attributes["mnemo.turn_id"]) == ("t1", "a1", "turn-1")
    assert by_name(spans, "caller").attributes["mnemo.service"] == "orchestrator"


async def test_client_errors_are_not_server_span_errors_but_crashes_are(
        echo_target: str, span_exporter: InMemorySpanExporter) -> None:
    async with client_channel(echo_target) as ch:
        unary = ch.unary_unary("/test.Echo/Unary", request_serializer=_identity, response_deserializer=_identity)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await unary(b"bad")
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as crash:
            await unary(b"crash")
        assert crash.value.code() == grpc.StatusCode.UNKNOWN

    rpcs = [s for s in span_exporter.get_finished_spans() if s.name == "test.Echo/Unary"]
    assert len(rpcs) == 2
    invalid, failed = rpcs
    assert invalid.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert invalid.status.status_code != StatusCode.ERROR
    assert failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert failed.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in failed.events)


async def test_jetstream_hop_and_redelivery_keep_the_publishers_parent(
        nats_url: str, span_exporter: InMemorySpanExporter) -> None:
    nc = await connect(nats_url, "observability-propagation")
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name="OBS_PROPAGATION", subjects=["obs.propagation.>"]))
        with telemetry.turn_scope(tenant_id="t9", agent_id="a9", turn_id="turn-9"):
            with telemetry.span("gateway.publish", tracer="mnemo.gateway") as publisher:
                await js.publish("obs.propagation.t9.a9", b"turn", headers=telemetry.inject())
        sub = await js.pull_subscribe("obs.propagation.>", durable="obs-consumer", stream="OBS_PROPAGATION",
                                      config=ConsumerConfig(ack_wait=30))
        # Outside any span: the consumer's context comes from the message headers alone.
        for attempt in (1, 2):
            [msg] = await sub.fetch(1, timeout=5)
            assert msg.metadata.num_delivered == attempt
            with telemetry.span("orchestrator.turn", tracer="mnemo.orchestrator", parent=msg.headers,
                                attributes={"attempt": attempt}):
                pass
            await (msg.nak() if attempt == 1 else msg.ack())

        turns = [s for s in span_exporter.get_finished_spans() if s.name == "orchestrator.turn"]
        assert len(turns) == 2
        for s in turns:
            assert s.context.trace_id == publisher.get_span_context().trace_id
            assert s.parent.span_id == publisher.get_span_context().span_id
            assert s.attributes["mnemo.turn_id"] == "turn-9" and s.attributes["mnemo.service"] == "orchestrator"
    finally:
        await js.delete_stream("OBS_PROPAGATION")
        await nc.drain()


def test_extract_ignores_header_case_and_missing_headers(span_exporter: InMemorySpanExporter) -> None:
    with telemetry.span("root") as root:
        headers = telemetry.inject({"Nats-Msg-Id": "x"})
    assert headers["Nats-Msg-Id"] == "x" and "traceparent" in headers
    upper = {"Traceparent": headers["traceparent"]}
    ctx = telemetry.extract(upper)
    assert trace.get_current_span(ctx).get_span_context().span_id == root.get_span_context().span_id
    assert not trace.get_current_span(telemetry.extract(None)).get_span_context().is_valid


async def test_span_ids_become_the_scope_of_downstream_spans(
        echo_target: str, span_exporter: InMemorySpanExporter) -> None:
    async with client_channel(echo_target) as ch:
        unary = ch.unary_unary("/test.Echo/Unary", request_serializer=_identity, response_deserializer=_identity)
        with telemetry.span("orchestrator.turn", tracer="mnemo.orchestrator", attributes={
                "mnemo.tenant_id": "t2", "mnemo.agent_id": "a2", "mnemo.turn_id": "turn-2"}):
            with telemetry.span("orchestrator.step", tracer="mnemo.orchestrator"):
                await unary(b"x")
        await unary(b"outside")
    spans = span_exporter.get_finished_spans()
    step = by_name(spans, "orchestrator.step")
    inside, outside = [s for s in spans if s.name == "test.Echo/Unary"]
    for s in (step, inside):
        assert s.attributes["mnemo.turn_id"] == "turn-2" and s.attributes["mnemo.tenant_id"] == "t2"
    assert "mnemo.turn_id" not in outside.attributes


async def test_write_style_and_bidirectional_streams_are_traced(
        echo_target: str, span_exporter: InMemorySpanExporter) -> None:
    async with client_channel(echo_target) as ch:
        written = ch.unary_stream("/test.Echo/Written", request_serializer=_identity, response_deserializer=_identity)
        bidi = ch.stream_stream("/test.Echo/Bidi", request_serializer=_identity, response_deserializer=_identity)

        async def requests() -> AsyncIterator[bytes]:
            for r in (b"a", b"b"):
                yield r

        with telemetry.span("caller", tracer="mnemo.orchestrator") as caller:
            assert [x async for x in written(b"w")] == [b"w0", b"w1"]
            assert [x async for x in bidi(requests())] == [b"bidi:a", b"bidi:b"]
    spans = span_exporter.get_finished_spans()
    for rpc_name, child in (("test.Echo/Written", "echo.write"), ("test.Echo/Bidi", "echo.bidi")):
        rpc = by_name(spans, rpc_name)
        assert rpc.parent.span_id == caller.get_span_context().span_id
        assert rpc.attributes["rpc.grpc.status_code"] == 0
        children = [s for s in spans if s.name == child]
        assert len(children) == 2 and all(c.parent.span_id == rpc.context.span_id for c in children)


async def test_a_cancelled_call_is_not_a_server_error(
        echo_target: str, span_exporter: InMemorySpanExporter) -> None:
    _slow_started.clear()
    async with client_channel(echo_target) as ch:
        slow = ch.unary_unary("/test.Echo/Slow", request_serializer=_identity, response_deserializer=_identity)
        call = slow(b"x")
        await asyncio.wait_for(_slow_started.wait(), 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        def ended() -> bool:
            return any(s.name == "test.Echo/Slow" for s in span_exporter.get_finished_spans())

        await eventually(ended, message="the cancelled RPC's server span never ended")
    rpc = by_name(span_exporter.get_finished_spans(), "test.Echo/Slow")
    assert rpc.status.status_code != StatusCode.ERROR
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
