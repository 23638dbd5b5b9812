"""The models the llm-proxy serves, as the gateway shows them (REST GET /v1/models, gRPC ListModels)."""

from __future__ import annotations

from mnemo.common.errors import MnemoError
from mnemo.common.models import ModelListCache, ModelSource
from mnemo.gateway.errors import ApiError
from mnemo.v1 import llm_pb2


class ModelLister:
    """llm.ListModels with a short cache (the list changes only when the llm-proxy is reconfigured)."""

    def __init__(self, llm: ModelSource, ttl: float = 5.0) -> None:
        self.cache = ModelListCache(llm, ttl)

    async def list(self) -> llm_pb2.ListModelsResponse:
        """The llm-proxy's models and defaults; ApiError (503...) when it cannot be asked."""
        try:
            return await self.cache.list()
        except MnemoError as exc:
            raise ApiError.from_error(exc, "the llm-proxy") from exc
