"""What the orchestrator caches from other services: model context windows and preset texts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mnemo.common.errors import InvalidArgument, MnemoError, NotFound
from mnemo.common.models import ModelListCache, ModelSource
from mnemo.orchestrator import presets
from mnemo.orchestrator.limits import DEFAULT_CONTEXT_WINDOW
from mnemo.v1 import llm_pb2, memory_pb2

# An unknown model asks the llm-proxy again, at most this often (seconds).
UNKNOWN_MODEL_REFRESH = 1.0


class ModelCatalog:
    """Context windows from the llm-proxy registry (ListModels), refreshed on an unknown model (at
    most once a second; meanwhile, and while the llm-proxy cannot be asked, the default window)."""

    def __init__(self, llm: ModelSource, refresh_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.llm = llm
        self.windows: dict[str, int] = {}
        self.default_model = ""
        self._models = ModelListCache(llm, ttl=refresh_s, clock=clock)

    def _use(self, resp: llm_pb2.ListModelsResponse) -> None:
        self.windows = {m.name: m.context_window for m in resp.models if m.context_window > 0}
        self.default_model = resp.default_model

    async def context_window(self, model: str) -> int:
        if model not in self.windows and self._models.age() > UNKNOWN_MODEL_REFRESH:
            try:
                self._use(await self._models.refresh(min_age=UNKNOWN_MODEL_REFRESH))
            except MnemoError:
                pass  # the default window until the llm-proxy answers
        return self.windows.get(model, DEFAULT_CONTEXT_WINDOW)


class PresetCache:
    """Preset texts: built-in presets, or tenant templates of kind "preset" (cached briefly)."""

    def __init__(self, memory: Any, ttl_s: float = 30.0) -> None:
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
        except (NotFound, InvalidArgument):
            pass  # no such template: the built-in preset
        except MnemoError:
            if text is None:
                raise
        if text is None:
            text = presets.MEMGPT_CHAT
        self._cache[key] = (now, text)
        return text
