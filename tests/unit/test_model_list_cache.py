"""The one model-list cache and its three users: the gateway's lister, the orchestrator's catalog, and
the memory service's defaults. The llm-proxy is a port double answering ListModels (or failing)."""

from __future__ import annotations

import asyncio
import math

import pytest

from mnemo.common.errors import InvalidArgument, MnemoError, NotFound, Unavailable
from mnemo.common.models import ModelListCache
from mnemo.gateway.errors import ApiError
from mnemo.gateway.models import ModelLister
from mnemo.memory.llm_client import LLMClient
from mnemo.orchestrator.catalog import ModelCatalog
from mnemo.orchestrator.limits import DEFAULT_CONTEXT_WINDOW
from mnemo.v1 import llm_pb2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLLM:
    """ListModels answers `models` (a new response each call) or raises `error`; Embed raises `error`."""

    def __init__(self, *models: llm_pb2.ModelInfo, default: str = "", embedding: str = "") -> None:
        self.models = list(models)
        self.default = default
        self.embedding = embedding
        self.error: MnemoError | None = None
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def ListModels(self, request: llm_pb2.ListModelsRequest,
                         timeout: float | None = None) -> llm_pb2.ListModelsResponse:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return llm_pb2.ListModelsResponse(models=self.models, default_model=self.default,
                                          default_embedding_model=self.embedding)

    async def Embed(self, request: llm_pb2.EmbedRequest, timeout: float | None = None) -> llm_pb2.EmbedResponse:
        assert self.error is not None
        raise self.error


def model(name: str, window: int = 0, dim: int = 0) -> llm_pb2.ModelInfo:
    return llm_pb2.ModelInfo(name=name, context_window=window, embedding_dim=dim)


async def test_the_cache_answers_from_memory_until_the_ttl_is_over() -> None:
    llm, clock = FakeLLM(model("a")), Clock()
    cache = ModelListCache(llm, ttl=5.0, clock=clock)
    first = await cache.list()
    clock.now += 4.9
    assert await cache.list() is first and llm.calls == 1
    clock.now += 0.2
    second = await cache.list()
    assert second is not first and llm.calls == 2 and cache.age() == 0.0


async def test_a_failure_reaches_the_caller_and_keeps_the_last_answer() -> None:
    llm, clock = FakeLLM(model("a")), Clock()
    cache = ModelListCache(llm, ttl=5.0, clock=clock)
    first = await cache.list()
    clock.now += 10
    llm.error = Unavailable("down")
    with pytest.raises(Unavailable):
        await cache.list()
    assert cache.response is first
    llm.error = None
    assert (await cache.list()).models[0].name == "a" and llm.calls == 3


async def test_concurrent_misses_share_one_call() -> None:
    llm = FakeLLM(model("a"))
    llm.gate = asyncio.Event()
    cache = ModelListCache(llm, ttl=5.0)
    waiting = [asyncio.ensure_future(cache.list()) for _ in range(5)]
    await llm.entered.wait()
    llm.gate.set()
    answers = await asyncio.gather(*waiting)
    assert llm.calls == 1 and all(a is answers[0] for a in answers)


async def test_refresh_asks_again_unless_the_answer_is_younger_than_min_age() -> None:
    llm, clock = FakeLLM(model("a")), Clock()
    cache = ModelListCache(llm, ttl=math.inf, clock=clock)
    first = await cache.list()
    clock.now += 1e6
    assert await cache.list() is first  # infinite ttl: kept
    second = await cache.refresh()
    assert second is not first and llm.calls == 2
    clock.now += 0.5
    assert await cache.refresh(min_age=1.0) is second and llm.calls == 2
    clock.now += 0.6
    assert await cache.refresh(min_age=1.0) is not second and llm.calls == 3


async def test_gateway_lister_maps_failures_to_api_errors() -> None:
    llm = FakeLLM(model("a"), default="a")
    lister = ModelLister(llm)
    assert (await lister.list()).default_model == "a"
    assert (await lister.list()).default_model == "a" and llm.calls == 1  # 5 s TTL
    down = ModelLister(FakeLLM())
    down.cache.llm.error = Unavailable("connection refused")  # type: ignore[attr-defined]
    with pytest.raises(ApiError) as err:
        await down.list()
    assert err.value.status == 503 and err.value.detail == "the llm-proxy is unavailable: connection refused"


async def test_orchestrator_catalog_refreshes_on_an_unknown_model_at_most_once_a_second() -> None:
    llm, clock = FakeLLM(model("small", window=8000)), Clock()
    catalog = ModelCatalog(llm, clock=clock)
    assert await catalog.context_window("small") == 8000 and llm.calls == 1
    assert await catalog.context_window("small") == 8000 and llm.calls == 1  # known: no call
    llm.models.append(model("big", window=128000))
    assert await catalog.context_window("big") == DEFAULT_CONTEXT_WINDOW and llm.calls == 1  # asked < 1 s ago
    clock.now += 1.5
    assert await catalog.context_window("big") == 128000 and llm.calls == 2
    llm.error = Unavailable("down")
    clock.now += 1.5
    assert await catalog.context_window("other") == DEFAULT_CONTEXT_WINDOW and llm.calls == 3  # swallowed
    assert await catalog.context_window("big") == 128000


async def test_memory_defaults_are_asked_once_and_failures_are_domain_errors() -> None:
    llm = FakeLLM(model("chat"), model("emb", dim=384), model("emb2", dim=768), default="chat", embedding="emb")
    client = LLMClient("127.0.0.1:1")
    client.use(lambda grpc_stub: llm)
    try:
        defaults = await client.defaults()
        assert (defaults.chat_model, defaults.embedding_model, defaults.embedding_dim) == ("chat", "emb", 384)
        assert await client.embedding_dim("emb") == 384 and llm.calls == 1
        assert await client.embedding_dim("emb2") == 768 and llm.calls == 2  # another model: asked afresh
        assert await client.defaults() is defaults and llm.calls == 2

        llm.error = InvalidArgument("unknown model 'x'")
        with pytest.raises(InvalidArgument, match=r"^embedding failed: unknown model 'x'$"):
            await client.embed(["t"], model="x")
        llm.error = NotFound("gone")
        with pytest.raises(Unavailable, match=r"^embedding failed \(NOT_FOUND\): gone$"):
            await client.embed(["t"])

        fresh = LLMClient("127.0.0.1:1")
        fresh.use(lambda grpc_stub: llm)
        llm.error = Unavailable("connection refused")
        with pytest.raises(Unavailable, match=r"^llm-proxy unavailable at 127\.0\.0\.1:1: connection refused$"):
            await fresh.defaults()
        await fresh.close()
    finally:
        await client.close()
