"""Unary gRPC methods over NATS request-reply (mnemo.common.natsrpc): real nats-server, real gRPC
server for the fallback, the generated LLMService contract with a small servicer."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mnemo.common import natsrpc, telemetry
from mnemo.common.grpcutil import GrpcServer, client_channel
from mnemo.v1 import llm_pb2, llm_pb2_grpc
from tests.fixtures_observability import span_exporter  # noqa: F401

SERVICE = natsrpc.LLM_SERVICE


class Servicer(llm_pb2_grpc.LLMServiceServicer):
    """CountTokens does what its `model` says; every reply names the replica that served it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = asyncio.Event()

    async def CountTokens(self, request, context):  # type: ignore[no-untyped-def]
        texts = list(request.texts)
        if request.model == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no model called missing",
                                trailing_metadata=(("retry-after-ms", "250"),))
        if request.model == "crash":
            raise RuntimeError("the servicer failed")
        if request.model == "wait":   # returns only once a later call has released it
            await self.release.wait()
        if request.model == "release":
            self.release.set()
        if request.model == "slow":   # a long call of a live server (workload, not synchronization)
            await asyncio.sleep(1.5)
        if request.model == "big":    # more than NATS's default 1 MB max_payload
            return llm_pb2.CountTokensResponse(per_text=[2**30] * 400_000, tokenizer=self.name)  # 2 MB
        if request.model == "deadline":
            return llm_pb2.CountTokensResponse(total=int(context.time_remaining() * 1000), tokenizer=self.name)
        if request.model == "trace":
            carrier = dict(context.invocation_metadata())
            return llm_pb2.CountTokensResponse(tokenizer=carrier.get("traceparent", ""))
        return llm_pb2.CountTokensResponse(total=sum(len(t) for t in texts), tokenizer=self.name)


@pytest.fixture
def group() -> str:
    return f"g{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def servers(nc: Any, group: str) -> AsyncIterator[list[natsrpc.NatsRpcServer]]:
    started: list[natsrpc.NatsRpcServer] = []

    async def start(name: str, in_group: str) -> natsrpc.NatsRpcServer:
        server = natsrpc.NatsRpcServer(nc, in_group, natsrpc.LLM, SERVICE, Servicer(name))
        await server.start()
        started.append(server)
        return server

    await start("a1", group)
    yield started
    for server in started:
        await server.stop()


@pytest.fixture
async def grpc_fallback() -> AsyncIterator[Any]:
    """The same servicer behind a real gRPC server, and a stub to it."""
    server = GrpcServer("llm-test", "127.0.0.1", 0)
    server.add(llm_pb2_grpc.add_LLMServiceServicer_to_server, Servicer("grpc"), "mnemo.v1.LLMService")
    await server.start()
    channel = client_channel(server.address)
    yield llm_pb2_grpc.LLMServiceStub(channel)
    await channel.close()
    await server.stop(0)


def count(model: str = "", *texts: str) -> llm_pb2.CountTokensRequest:
    return llm_pb2.CountTokensRequest(model=model, texts=list(texts))


async def test_a_call_goes_over_nats_and_the_service_is_discoverable(nc, servers, group) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)  # no gRPC at all
    reply = await stub.CountTokens(count("", "abc", "de"), timeout=5)
    assert (reply.total, reply.tokenizer) == (5, "a1")

    info = json.loads((await nc.request("$SRV.INFO.mnemo-llm", b"", timeout=5)).data)
    subjects = {e["subject"] for e in info["endpoints"]}
    assert natsrpc.rpc_subject(group, natsrpc.LLM, "CountTokens") in subjects
    assert natsrpc.rpc_subject(group, natsrpc.LLM, "ChatStream") not in subjects  # streaming: gRPC only
    assert info["metadata"]["group"] == group


async def test_statuses_details_and_trailers_cross_like_grpc(nc, servers, group) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CountTokens(count("missing"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no model called missing"
    assert dict(err.value.trailing_metadata())["retry-after-ms"] == "250"

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CountTokens(count("crash"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INTERNAL and "RuntimeError" in err.value.details()

    garbage = await nc.request(natsrpc.rpc_subject(group, natsrpc.LLM, "CountTokens"), b"\xff\xff\xff", timeout=5)
    assert garbage.headers["Nats-Service-Error-Code"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])


async def test_calls_run_concurrently(nc, servers, group) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)
    waiting = asyncio.ensure_future(stub.CountTokens(count("wait"), timeout=10))
    # Served one at a time, the first call would hold the second (which releases it) until it timed out.
    await stub.CountTokens(count("release"), timeout=10)
    assert (await waiting).tokenizer == "a1"


async def test_the_callers_deadline_reaches_the_servicer(nc, servers, group) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)
    remaining_ms = (await stub.CountTokens(count("deadline"), timeout=3)).total
    assert 0 < remaining_ms <= 3000


async def test_without_a_nats_server_for_the_method_the_call_goes_over_grpc(nc, grpc_fallback) -> None:
    stub = natsrpc.NatsRpcStub(nc, "nobody-here", natsrpc.LLM, SERVICE, grpc_fallback)
    assert (await stub.CountTokens(count("", "abcd"), timeout=5)).tokenizer == "grpc"
    bare = natsrpc.NatsRpcStub(nc, "nobody-here", natsrpc.LLM, SERVICE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bare.CountTokens(count(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_reply_too_large_for_nats_comes_over_grpc(nc, servers, group, grpc_fallback) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE, grpc_fallback)
    reply = await stub.CountTokens(count("big"), timeout=10)
    assert reply.tokenizer == "grpc" and len(reply.per_text) == 400_000
    # A request too large for NATS never tries it.
    huge = count("", "x" * (nc.max_payload + 10))
    assert (await stub.CountTokens(huge, timeout=10)).total == nc.max_payload + 10


async def test_replicas_of_a_group_share_calls_and_other_groups_never_answer(nc, servers, group) -> None:
    for name, in_group in (("a2", group), ("b1", f"{group}-other")):
        server = natsrpc.NatsRpcServer(nc, in_group, natsrpc.LLM, SERVICE, Servicer(name))
        await server.start()
        servers.append(server)
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)
    served = {(await stub.CountTokens(count(), timeout=5)).tokenizer for _ in range(60)}
    assert served == {"a1", "a2"}


async def test_trace_context_travels_with_the_call(nc, servers, group, span_exporter) -> None:
    stub = natsrpc.NatsRpcStub(nc, group, natsrpc.LLM, SERVICE)
    with telemetry.span("caller", tracer="mnemo.orchestrator") as caller:
        traceparent = (await stub.CountTokens(count("trace"), timeout=5)).tokenizer
    ctx = caller.get_span_context()
    assert traceparent.split("-")[1] == format(ctx.trace_id, "032x")
    server = next(s for s in span_exporter.get_finished_spans() if s.name == "mnemo.v1.LLMService/CountTokens")
    assert server.parent is not None and server.parent.span_id == ctx.span_id
    assert server.attributes["rpc.system"] == "nats" and server.attributes["rpc.grpc.status_code"] == 0


async def test_a_caller_gives_up_on_a_server_that_died_mid_call(nc: Any, group: str) -> None:
    """Regression: a call whose server was killed mid-call waited out its whole deadline (60 s by
    default). Here the call is taken by a subscriber that never answers (as a SIGKILLed server would
    not): the caller hears no progress and gives up after its quiet period with a retryable error."""
    from mnemo.common.errors import Unavailable

    taken = asyncio.Event()

    async def swallow(msg: Any) -> None:
        taken.set()

    subject = natsrpc.rpc_subject(group, natsrpc.LLM, "CountTokens")
    sub = await nc.subscribe(subject, queue=f"mnemo.{group}.{natsrpc.LLM}", cb=swallow)
    caller = natsrpc.NatsRpcCaller(nc, group, natsrpc.LLM, SERVICE, quiet=0.5)
    began = asyncio.get_running_loop().time()
    with pytest.raises(Unavailable) as err:
        await caller.call(subject, llm_pb2.CountTokensResponse, llm_pb2.CountTokensRequest(texts=["x"]), 30.0)
    assert taken.is_set()
    assert err.value.retryable and "no word from the server" in str(err.value)
    assert asyncio.get_running_loop().time() - began < 10.0  # not the 30 s deadline
    await sub.unsubscribe()


async def test_a_long_call_of_a_live_server_is_kept_alive_by_progress(nc: Any, servers: Any, group: str) -> None:
    """A call running longer than the caller's quiet period completes: the server's progress
    messages tell the caller it is still at work."""
    caller = natsrpc.NatsRpcCaller(nc, group, natsrpc.LLM, SERVICE, quiet=0.4)
    subject = natsrpc.rpc_subject(group, natsrpc.LLM, "CountTokens")
    reply = await caller.call(subject, llm_pb2.CountTokensResponse,
                              llm_pb2.CountTokensRequest(model="slow", texts=["abc"]), 30.0)
    assert reply.total == 3 and reply.tokenizer == "a1"
