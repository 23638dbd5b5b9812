"""What the orchestrator caches from other services: model context windows and preset texts."""

from __future__ import annotations

import time

import grpc

from mnemo.orchestrator import presets
from mnemo.orchestrator.limits import DEFAULT_CONTEXT_WINDOW
from mnemo.v1 import llm_pb2, llm_pb2_grpc, memory_pb2, memory_pb2_grpc


class ModelCatalog:
    """Context windows from the llm-proxy registry (ListModels), refreshed on an unknown model."""

    def __init__(self, llm: llm_pb2_grpc.LLMServiceStub, refresh_s: float = 60.0) -> None:
        self.llm = llm
        self.windows: dict[str, int] = {}
        self.default_model = ""
        self._loaded_at = 0.0
        self._refresh_s = refresh_s

    async def _load(self) -> None:
        resp = await self.llm.ListModels(llm_pb2.ListModelsRequest(), timeout=10)
        self.windows = {m.name: m.context_window for m in resp.models if m.context_window > 0}
        self.default_model = resp.default_model
        self._loaded_at = time.monotonic()

    async def context_window(self, model: str) -> int:
        if model not in self.windows and time.monotonic() - self._loaded_at > 1.0:
            try:
                await self._load()
            except grpc.aio.AioRpcError:
                pass
        return self.windows.get(model, DEFAULT_CONTEXT_WINDOW)


class PresetCache:
    """Preset texts: built-in presets, or tenant templates of kind "preset" (cached briefly)."""

    def __init__(self, memory: memory_pb2_grpc.MemoryServiceStub, ttl_s: float = 30.0) -> None:
        self.memory = memory
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}

    async def text(self, tenant_id: str, name: str) -> str:
        name = name or presets.DEFAULT_PRESET
        key = (tenant_id, name)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        text = presets.builtin(name)
        try:
            tpl = await self.memory.GetTemplate(memory_pb2.TemplateRef(
                tenant_id=tenant_id, kind="preset", name=name), timeout=10)
            if tpl.text and (text is None or name not in ("default",)):
                text = tpl.text
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT) and text is None:
                raise
        if text is None:
            text = presets.MEMGPT_CHAT
        self._cache[key] = (now, text)
        return text
