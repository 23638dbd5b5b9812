"""Stopping the llm-proxy while a local (llama.cpp) inference runs is prompt: the call fails with
UNAVAILABLE and the inference thread stops at its next token instead of holding the shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from mnemo.common.grpcutil import client_channel
from mnemo.llm_proxy.providers import local_provider
from mnemo.v1 import llm_pb2, llm_pb2_grpc
from tests.fixtures_llm import start_llm_service
from tests.helpers import eventually


@pytest.mark.slow
async def test_stop_during_local_inference_is_prompt(scripted_llm: Any) -> None:
    service = await start_llm_service(scripted_llm.base_url)
    channel = client_channel(service.address)
    stub = llm_pb2_grpc.LLMServiceStub(channel)
    try:
        long_call = asyncio.ensure_future(stub.Chat(llm_pb2.ChatRequest(
            model="smollm2-135m-instruct", max_tokens=4000, tenant_id="t1", agent_id="a1",
            messages=[llm_pb2.ChatMessage(role="user", content="Write a very long story about the sea.")]),
            timeout=120))
        await eventually(lambda: local_provider._running > 0, timeout=30, message="inference never started")
        started = time.perf_counter()
        await service.stop()
        elapsed = time.perf_counter() - started
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await long_call
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE, failure.value
        assert "shutting down" in (failure.value.details() or "")
        assert elapsed < 1.5, f"stop took {elapsed:.2f}s"
        # the abandoned thread stops at its next token
        await eventually(lambda: local_provider._running == 0, timeout=20, message="inference thread kept running")
    finally:
        await channel.close()
        await service.stop()
