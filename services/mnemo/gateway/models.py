"""The models the llm-proxy serves, as the gateway shows them (REST GET /v1/models, gRPC ListModels)."""

from __future__ import annotations

import time

import grpc

from mnemo.gateway.errors import ApiError
from mnemo.v1 import llm_pb2, llm_pb2_grpc

LIST_TIMEOUT = 10.0


class ModelLister:
    """llm.ListModels with a short cache (the list changes only when the llm-proxy is reconfigured)."""

    def __init__(self, llm: llm_pb2_grpc.LLMServiceStub, ttl: float = 5.0) -> None:
        self.llm = llm
        self.ttl = ttl
        self._cached: tuple[float, llm_pb2.ListModelsResponse] | None = None

    async def list(self) -> llm_pb2.ListModelsResponse:
        """The llm-proxy's models and defaults; ApiError (503...) when it cannot be asked."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        try:
            resp = await self.llm.ListModels(llm_pb2.ListModelsRequest(), timeout=LIST_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise ApiError.from_rpc(exc, "the llm-proxy") from exc
        self._cached = (now, resp)
        return resp
