"""The llm-proxy's model list (ListModels) as every other service keeps it: one cache with a TTL."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Protocol

from mnemo.v1 import llm_pb2

LIST_TIMEOUT = 10.0


class ModelSource(Protocol):
    """What the cache needs of the llm-proxy's client (`mnemo.common.ports.LLMPort` has it)."""

    async def ListModels(self, request: llm_pb2.ListModelsRequest, timeout: float | None = None,
                         ) -> llm_pb2.ListModelsResponse: ...


class ModelListCache:
    """`ListModels` of the llm-proxy, asked again once the answer is `ttl` seconds old.

    The client's failures (domain errors) reach the caller and leave the cache as it was.
    Concurrent misses share one call. `ttl=math.inf` keeps the first answer until `refresh()`.
    """

    def __init__(self, llm: ModelSource, ttl: float = 5.0, *, timeout: float = LIST_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.llm = llm
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock
        self._response: llm_pb2.ListModelsResponse | None = None
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()

    @property
    def response(self) -> llm_pb2.ListModelsResponse | None:
        """The last answer, however old (None before the first one)."""
        return self._response

    def age(self) -> float:
        """Seconds since the last answer (infinite before the first one)."""
        return self._clock() - self._fetched_at

    async def list(self) -> llm_pb2.ListModelsResponse:
        """The models and defaults: the cached answer while younger than `ttl`, else a fresh one."""
        if self._response is not None and self.age() < self.ttl:
            return self._response
        return await self.refresh(min_age=self.ttl)

    async def refresh(self, min_age: float = 0.0) -> llm_pb2.ListModelsResponse:
        """A fresh answer, unless the cached one is younger than `min_age` seconds (then that one)."""
        async with self._lock:
            if self._response is not None and self.age() < min_age:
                return self._response  # fetched meanwhile by a concurrent caller
            response = await self.llm.ListModels(llm_pb2.ListModelsRequest(), timeout=self.timeout)
            self._response = response
            self._fetched_at = self._clock()
            return response
