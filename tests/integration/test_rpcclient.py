"""The services' RPC adapter (mnemo.common.rpcclient): domain errors, whichever transport carried the
call, over a real nats-server and a real gRPC server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from mnemo.common import localrpc, natsrpc, status
from mnemo.common.errors import (
    Conflict,
    ContextOverflow,
    DeadlineExceeded,
    MnemoError,
    NotFound,
    Unavailable,
    error_for,
)
from mnemo.common.retry import Backoff
from mnemo.common.rpcclient import RpcClient
from mnemo.v1 import llm_pb2, llm_pb2_grpc
from tests.integration.test_natsrpc import SERVICE, Servicer, count, group, grpc_fallback, servers  # noqa: F401


def nats_client(nc: Any, group: str, grpc_stub: Any = None, **kw: Any) -> RpcClient:
    return RpcClient(SERVICE, grpc_stub, nats=natsrpc.NatsRpcCaller(nc, group, natsrpc.LLM, SERVICE), **kw)


@pytest.mark.parametrize("transport", ["nats", "grpc"])
async def test_statuses_arrive_as_domain_errors(nc, servers, group, grpc_fallback, transport) -> None:
    client = nats_client(nc, group) if transport == "nats" else RpcClient(SERVICE, grpc_fallback)
    with pytest.raises(NotFound) as err:
        await client.CountTokens(count("missing"), timeout=5)
    assert str(err.value) == "no model called missing" and err.value.code == "NOT_FOUND"
    assert err.value.retry_after == 0.25
    with pytest.raises(MnemoError) as crash:  # INTERNAL over NATS, UNKNOWN from grpcio's server
        await client.CountTokens(count("crash"), timeout=5)
    assert crash.value.code in ("INTERNAL", "UNKNOWN") and "RuntimeError" in str(crash.value)
    assert (await client.CountTokens(count("", "abc"), timeout=5)).total == 3


async def test_nobody_on_nats_goes_over_grpc_and_nobody_at_all_is_unavailable(nc, grpc_fallback) -> None:
    client = nats_client(nc, "nobody-here", grpc_fallback)
    assert (await client.CountTokens(count("", "abcd"), timeout=5)).tokenizer == "grpc"
    with pytest.raises(Unavailable):
        await nats_client(nc, "nobody-here").CountTokens(count(), timeout=5)


async def test_idempotent_methods_are_retried_while_the_callee_is_unavailable(nc, group) -> None:
    attempts: list[int] = []

    class FlakyThenUp(Servicer):
        async def CountTokens(self, request, context):  # type: ignore[no-untyped-def]
            attempts.append(1)
            if len(attempts) < 3:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            return llm_pb2.CountTokensResponse(tokenizer="up")

    server = natsrpc.NatsRpcServer(nc, group, natsrpc.LLM, SERVICE, FlakyThenUp("f"))
    await server.start()
    try:
        policy = Backoff(base=0.001, cap=0.01, attempts=3)
        retried = nats_client(nc, group, idempotent={"CountTokens"}, retry=policy)
        assert (await retried.CountTokens(count(), timeout=5)).tokenizer == "up"
        assert len(attempts) == 3
        attempts.clear()
        once = nats_client(nc, group, retry=policy)  # not declared idempotent: one attempt
        with pytest.raises(Unavailable):
            await once.CountTokens(count(), timeout=5)
        assert len(attempts) == 1
    finally:
        await server.stop()


def test_status_mapping_round_trips_every_domain_error() -> None:
    for code in grpc.StatusCode:
        if code == grpc.StatusCode.OK:
            continue
        err = error_for(code.name, "why", retry_after=1.5)
        assert status.grpc_code(err) == code
        back = status.from_rpc_error(status.to_rpc_error(err))
        assert (type(back), back.code, str(back), back.retry_after) == (type(err), code.name, "why", 1.5)
    assert isinstance(error_for("ABORTED"), Conflict) and isinstance(error_for("OUT_OF_RANGE"), ContextOverflow)


def test_stub_face_is_unchanged() -> None:
    """NatsRpcStub stays a drop-in for a generated stub: same method names. (A plain channel: an aio one
    needs a current event loop, which an earlier test's asyncio.run may have unset.)"""
    names = {n for n in dir(llm_pb2_grpc.LLMServiceStub(grpc.insecure_channel("127.0.0.1:1"))) if n[0].isupper()}
    assert set(natsrpc.unary_method_names(SERVICE)) <= names


def local_client(nc: Any, group: str) -> RpcClient:
    return RpcClient(SERVICE, None, nats=natsrpc.NatsRpcCaller(nc, group, natsrpc.LLM, SERVICE),
                     local=localrpc.LocalRpcCaller(group, natsrpc.LLM, SERVICE.full_name))


async def test_in_process_calls_skip_the_wire_and_keep_its_semantics(nc, group) -> None:
    seen: list[llm_pb2.CountTokensRequest] = []

    class Recording(Servicer):
        async def CountTokens(self, request, context):  # type: ignore[no-untyped-def]
            seen.append(request)
            request.texts.append("changed by the servicer")
            return await super().CountTokens(request, context)

    servicer = Recording("local")
    server = natsrpc.NatsRpcServer(nc, group, natsrpc.LLM, SERVICE, servicer)
    await server.start()
    try:
        client = local_client(nc, group)
        request = count("", "abc")
        reply = await client.CountTokens(request, timeout=5)
        assert reply.tokenizer == "local" and reply.total == len("abc") + len("changed by the servicer")
        assert list(request.texts) == ["abc"]  # the servicer had its own copy
        reply.total = -1  # and the caller gets its own copy of the reply
        stats = await nc.request(f"$SRV.STATS.mnemo-llm.{server._micro.id}", b"", timeout=5)
        assert b'"num_requests":0' in stats.data.replace(b" ", b"")  # nothing went over NATS
        # The same errors as over NATS: statuses with their trailers, a servicer's bug as INTERNAL.
        with pytest.raises(NotFound) as err:
            await client.CountTokens(count("missing"), timeout=5)
        assert str(err.value) == "no model called missing" and err.value.retry_after == 0.25
        with pytest.raises(MnemoError) as crash:
            await client.CountTokens(count("crash"), timeout=5)
        assert crash.value.code == "INTERNAL" and "RuntimeError" in str(crash.value)
        assert 0 < (await client.CountTokens(count("deadline"), timeout=3)).total <= 3000
        with pytest.raises(DeadlineExceeded):
            await client.CountTokens(count("wait"), timeout=0.2)
    finally:
        await server.stop()
    # Withdrawn with its server: the next call goes over NATS, where nobody answers either.
    with pytest.raises(Unavailable):
        await local_client(nc, group).CountTokens(count(), timeout=5)


async def test_declared_methods_hand_their_request_and_response_over_uncopied(nc, group) -> None:
    """LOCAL_READONLY_REQUESTS / LOCAL_FRESH_RESPONSES: the objects pass as they are (a step's state
    and model request hold the whole queue); every other method still copies both ways."""
    seen: list[llm_pb2.CountTokensRequest] = []
    made: list[llm_pb2.CountTokensResponse] = []

    class Declaring(Servicer):
        LOCAL_READONLY_REQUESTS = frozenset({"CountTokens"})
        LOCAL_FRESH_RESPONSES = frozenset({"CountTokens"})

        async def CountTokens(self, request, context):  # type: ignore[no-untyped-def]
            seen.append(request)
            reply = await super().CountTokens(request, context)
            made.append(reply)
            return reply

    servicer = Declaring("local")
    server = natsrpc.NatsRpcServer(nc, group, natsrpc.LLM, SERVICE, servicer)
    await server.start()
    try:
        request = count("", "abc")
        reply = await local_client(nc, group).CountTokens(request, timeout=5)
        assert seen[-1] is request and reply is made[-1] and reply.total == 3
        Declaring.LOCAL_READONLY_REQUESTS = Declaring.LOCAL_FRESH_RESPONSES = frozenset()
        reply = await local_client(nc, group).CountTokens(request, timeout=5)
        assert seen[-1] is not request and reply is not made[-1] and reply == made[-1]
    finally:
        await server.stop()


async def test_a_service_served_elsewhere_is_called_over_nats(nc, servers, group) -> None:
    localrpc.withdraw(group, natsrpc.LLM, servers[0].servicer)
    assert (await local_client(nc, group).CountTokens(count("", "ab"), timeout=5)).total == 2
