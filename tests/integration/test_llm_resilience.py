"""Retries, Retry-After, timeouts, the circuit breaker, context-window refusal and tenant rate limits,
each mapped to the gRPC status the orchestrator relies on."""

from __future__ import annotations

import time

import grpc
import pytest

from mnemo.common.grpcutil import client_channel
from mnemo.llm_proxy.config import ProviderConfig, ProxyConfig
from mnemo.v1 import llm_pb2_grpc
from tests.fixtures_llm import llm_service, llm_stub, scripted_config, start_llm_service  # noqa: F401
from tests.helpers import refused_port
from tests.integration.test_llm_chat import req


def error(status: int, headers: dict | None = None, code: str | None = None, message: str = "scripted") -> dict:
    return {"error": {"status": status, "headers": headers or {}, "code": code, "message": message}}


async def test_429_with_retry_after_then_success(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(429, {"retry-after": "1"}))
    started = time.monotonic()
    resp = await llm_stub.Chat(req())
    assert time.monotonic() - started >= 0.95          # waited as the provider asked
    assert resp.message.tool_calls and len(scripted_llm.chat_requests()) == 2


async def test_500_is_retried(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(500), error(503))
    resp = await llm_stub.Chat(req())
    assert resp.message.tool_calls and len(scripted_llm.chat_requests()) == 3


async def test_persistent_500_gives_unavailable(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(500), error(500), error(500))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "500" in err.value.details()
    assert len(scripted_llm.chat_requests()) == 3


async def test_400_is_not_retried(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(400, message="bad parameter 'foo'"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bad parameter" in err.value.details()
    assert len(scripted_llm.chat_requests()) == 1


async def test_408_and_409_are_retried(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(408), error(409))
    assert (await llm_stub.Chat(req())).message.tool_calls
    assert len(scripted_llm.chat_requests()) == 3


async def test_long_retry_after_is_returned_to_the_caller(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(429, {"retry-after": "120"}))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req())
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(err.value.trailing_metadata())["retry-after-ms"] == "120000"
    assert len(scripted_llm.chat_requests()) == 1


async def test_timeout_is_deadline_exceeded(scripted_llm, nats_url) -> None:
    service = await start_llm_service(scripted_llm.base_url, nats_url, timeout=0.3)
    try:
        scripted_llm.push({"delay": 2.0, "content": "too late"})
        async with client_channel(service.address) as ch:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await llm_pb2_grpc.LLMServiceStub(ch).Chat(req())
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
    finally:
        await service.stop()


async def test_caller_deadline_bounds_the_provider_call(llm_stub, scripted_llm) -> None:
    scripted_llm.push({"delay": 2.0, "content": "too late"})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req(), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_breaker_opens_and_recovers(scripted_llm, nats_url) -> None:
    service = await start_llm_service(scripted_llm.base_url, nats_url, max_retries=0, breaker_failures=3,
                                      breaker_reset=0.5)
    try:
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            scripted_llm.push(error(500), error(502), error(503))
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.Chat(req())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Chat(req())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "circuit open" in err.value.details()
            assert "retry-after-ms" in dict(err.value.trailing_metadata())
            assert len(scripted_llm.chat_requests()) == 3          # the open circuit did not call out
            breaker = service.engine.breakers["openai"]
            while breaker.state == "open":                          # wait out the reset period
                await _tick()
            assert (await stub.Chat(req())).message.tool_calls      # half-open trial succeeds
            assert breaker.state == "closed"
    finally:
        await service.stop()


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_overflow_refused_before_sending(llm_stub, scripted_llm) -> None:
    big = "word " * 9000   # ~9000 tokens > gpt-4's 8192
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req(big, model="gpt-4"))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "context window of 8192" in err.value.details()
    assert scripted_llm.chat_requests() == []
    with pytest.raises(grpc.aio.AioRpcError) as err:    # fits alone, not with the completion reserved
        await llm_stub.Chat(req("word " * 7000, model="gpt-4", max_tokens=2000))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE


async def test_callers_prompt_count_is_checked_instead_of_a_recount(llm_stub, scripted_llm) -> None:
    # A short prompt that the caller counted as too large: refused on the caller's count, unsent.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req("hello", model="gpt-4", prompt_tokens=8500))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "request needs 8500 prompt" in err.value.details()
    assert scripted_llm.chat_requests() == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req("hello", model="gpt-4", prompt_tokens=-1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "prompt_tokens" in err.value.details()
    # A count that fits goes through.
    assert (await llm_stub.Chat(req("hello", model="gpt-4", prompt_tokens=120))).message.tool_calls


async def test_provider_overflow_error_is_out_of_range(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(400, code="context_length_exceeded",
                            message="This model's maximum context length is 8192 tokens."))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Chat(req())
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert len(scripted_llm.chat_requests()) == 1


async def test_tenant_token_rate_limit(scripted_llm, nats_url) -> None:
    config = scripted_config(scripted_llm.base_url)
    config.tenant_tokens_per_minute = 600
    service = await start_llm_service(scripted_llm.base_url, nats_url, config=config)
    try:
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            await stub.Chat(req(max_tokens=300))                     # ~330 of 600 reserved/spent
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Chat(req(max_tokens=500))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "retry after" in err.value.details()
            assert int(dict(err.value.trailing_metadata())["retry-after-ms"]) > 0
            other = req(max_tokens=500)
            other.tenant_id = "t2"                                   # other tenants are not affected
            assert (await stub.Chat(other)).message.tool_calls
    finally:
        await service.stop()


async def test_concurrency_cap_per_provider(scripted_llm, nats_url) -> None:
    import asyncio

    service = await start_llm_service(scripted_llm.base_url, nats_url, max_concurrency=2)
    try:
        scripted_llm.push(*[{"delay": 0.3, "content": "x"} for _ in range(4)])
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            started = time.monotonic()
            await asyncio.gather(*[stub.Chat(req(tools=())) for _ in range(4)])
            assert time.monotonic() - started >= 0.55     # two waves of two, not one of four
    finally:
        await service.stop()


def test_config_in_code_needs_no_environment() -> None:
    cfg = ProxyConfig(providers=[ProviderConfig(name="x", base_url="http://127.0.0.1:9/v1", api_key="k")])
    assert cfg.route("anything").name == "x"


async def test_stream_retried_before_first_delta_and_errors_mapped(llm_stub, scripted_llm) -> None:
    scripted_llm.push(error(503), {"content": "hello after retry"})
    chunks = [c async for c in llm_stub.ChatStream(req(tools=()))]
    assert "".join(c.delta for c in chunks) == "hello after retry"
    assert len(scripted_llm.chat_requests()) == 2
    scripted_llm.push(error(400, message="bad stream request"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in llm_stub.ChatStream(req(tools=())):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_chat_sends_the_providers_key_and_maps_what_the_endpoint_answers(scripted_llm, nats_url) -> None:
    """The chat hot path posts through aiohttp, not the SDK: the credentials the SDK resolved go with
    it, and refusals, non-JSON error pages and an endpoint nobody answers map as the SDK's errors do."""
    service = await start_llm_service(scripted_llm.base_url, nats_url, max_retries=1)
    try:
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            await stub.Chat(req())
            assert scripted_llm.chat_requests()[-1]["_authorization"] == "Bearer test"

            scripted_llm.push(error(401, message="bad key"))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Chat(req())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "credentials (401)" in err.value.details()

            scripted_llm.push({"raw": "<html>bad gateway</html>", "status": 502},
                              {"raw": "<html>bad gateway</html>", "status": 502})
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Chat(req())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "502" in err.value.details() and "bad gateway" in err.value.details()
    finally:
        await service.stop()

    with refused_port() as port:
        nobody = await start_llm_service(f"http://127.0.0.1:{port}/v1", nats_url, max_retries=0)
        try:
            async with client_channel(nobody.address) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await llm_pb2_grpc.LLMServiceStub(ch).Chat(req())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "unreachable" in err.value.details()
        finally:
            await nobody.stop()
