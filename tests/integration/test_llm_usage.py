"""Usage metering on NATS JetStream: records published per call, totals per tenant / agent that
survive a restart of the proxy, and chats served when NATS is unreachable."""

from __future__ import annotations

import grpc
import pytest

from mnemo.common import subjects, usage_wire
from mnemo.common.grpcutil import client_channel
from mnemo.v1 import llm_pb2, llm_pb2_grpc
from tests.fixtures_llm import start_llm_service
from tests.helpers import eventually
from tests.integration.test_llm_chat import req


def tenant_req(tenant: str, agent: str, **kw) -> llm_pb2.ChatRequest:  # type: ignore[no-untyped-def]
    r = req(**kw)
    r.tenant_id, r.agent_id, r.purpose = tenant, agent, "agent"
    return r


async def test_usage_published_and_totals_survive_restart(scripted_llm, nats_url, nc) -> None:
    from mnemo.common.ids import new_id

    tenant = new_id("ten").replace("-", "_")
    js = nc.jetstream()
    seen: list[dict] = []

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        seen.extend(usage_wire.decode(msg.data))

    sub = await nc.subscribe(subjects.usage_subject(tenant, "a1"), cb=on_msg)
    await nc.flush()   # the server has our interest before the proxy publishes
    service = await start_llm_service(scripted_llm.base_url, nats_url)
    try:
        async with client_channel(service.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)
            await eventually(lambda: service.meter.connected, message="meter connected")
            scripted_llm.push({"tool_call": {"name": "send_message", "arguments": {"message": "x"}},
                               "usage": {"prompt_tokens": 100, "completion_tokens": 7}},
                              {"content": "y", "usage": {"prompt_tokens": 50, "completion_tokens": 3}},
                              {"content": "z", "usage": {"prompt_tokens": 10, "completion_tokens": 1}})
            await stub.Chat(tenant_req(tenant, "a1"))
            await stub.Chat(tenant_req(tenant, "a1", tools=()))
            await stub.Chat(tenant_req(tenant, "a2", tools=()))
            await eventually(lambda: len(seen) == 2, message="usage records on NATS")
            rec = next(r for r in seen if r["prompt_tokens"] == 100)
            assert (rec["tenant"], rec["agent"], rec["model"], rec["provider"], rec["purpose"]) == \
                (tenant, "a1", "gpt-4o-mini", "openai", "agent")
            assert (rec["prompt_tokens"], rec["completion_tokens"]) == (100, 7)
            assert rec["latency_ms"] > 0 and rec["ts"]

            async def totals(agent: str = "") -> list:
                return list((await stub.GetUsage(llm_pb2.GetUsageRequest(tenant_id=tenant, agent_id=agent))).totals)

            async def settled() -> bool:
                return sum(t.calls for t in await totals()) == 3

            await eventually(settled, message="GetUsage totals")
            (a1,) = await totals("a1")
            assert (a1.prompt_tokens, a1.completion_tokens, a1.calls) == (150, 10, 2)
            other = await stub.GetUsage(llm_pb2.GetUsageRequest(tenant_id="someone-else"))
            assert not [t for t in other.totals if t.tenant_id == tenant]
    finally:
        await service.stop()
        await sub.unsubscribe()
    await js.stream_info(subjects.USAGE_STREAM)

    restarted = await start_llm_service(scripted_llm.base_url, nats_url)   # totals rebuilt from the stream
    try:
        async with client_channel(restarted.address) as ch:
            stub = llm_pb2_grpc.LLMServiceStub(ch)

            async def rebuilt() -> bool:
                resp = await stub.GetUsage(llm_pb2.GetUsageRequest(tenant_id=tenant))
                return sum(t.prompt_tokens for t in resp.totals) == 160
            await eventually(rebuilt, message="totals rebuilt after restart")
    finally:
        await restarted.stop()


async def test_chat_served_without_nats(scripted_llm) -> None:
    from tests.helpers import refused_port

    with refused_port() as nats_port:
        service = await start_llm_service(scripted_llm.base_url, f"nats://127.0.0.1:{nats_port}")
        try:
            async with client_channel(service.address) as ch:
                stub = llm_pb2_grpc.LLMServiceStub(ch)
                assert (await stub.Chat(req())).message.tool_calls
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetUsage(llm_pb2.GetUsageRequest(tenant_id="t1"))
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await service.stop()
