"""GET /v1/models and gRPC ListModels: the llm-proxy's models and defaults, behind auth."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import empty_pb2

from tests.fixtures_stack import Stack, module_stack  # noqa: F401


async def test_rest_lists_the_llm_proxy_models(module_stack: Stack) -> None:
    async with module_stack.http() as http:
        r = await http.get("/v1/models")
        assert r.status_code == 200, r.text
        body = r.json()
    names = [m["name"] for m in body["models"]]
    assert body["default_model"] == "gpt-4o-mini" and "gpt-4o-mini" in names
    assert "smollm2-135m-instruct" in names and body["default_embedding_model"] in names
    default = next(m for m in body["models"] if m["name"] == "gpt-4o-mini")
    assert default["provider"] == "openai" and default["context_window"] > 0 and default["max_output_tokens"] > 0
    assert {"supports_tools", "embedding"} <= set(default)


async def test_rest_models_requires_a_key(module_stack: Stack) -> None:
    async with module_stack.http(api_key="") as http:
        assert (await http.get("/v1/models")).status_code == 401
    async with module_stack.http(api_key="not-a-key") as http:
        assert (await http.get("/v1/models")).status_code == 401


async def test_grpc_list_models(module_stack: Stack) -> None:
    stub = module_stack.agent_stub()
    resp = await stub.ListModels(empty_pb2.Empty(), metadata=module_stack.grpc_auth(), timeout=10)
    assert resp.default_model == "gpt-4o-mini"
    assert "gpt-4o-mini" in [m.name for m in resp.models]
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.ListModels(empty_pb2.Empty(), metadata=module_stack.grpc_auth("wrong"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
