"""The memory service's view of the llm-proxy: model defaults and batched embeddings."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from mnemo.common import natsrpc, rpcclient
from mnemo.common.embedding_wire import to_vectors
from mnemo.common.errors import FailedPrecondition, InvalidArgument, MnemoError, Unavailable
from mnemo.common.grpcutil import client_channel
from mnemo.common.models import ModelListCache
from mnemo.v1 import llm_pb2, llm_pb2_grpc

log = logging.getLogger(__name__)

EMBED_BATCH = 64  # texts per Embed RPC


@dataclass(slots=True)
class ModelDefaults:
    chat_model: str
    embedding_model: str
    embedding_dim: int


def _over_grpc(grpc_stub: llm_pb2_grpc.LLMServiceStub) -> rpcclient.RpcClient:
    return rpcclient.RpcClient(natsrpc.LLM_SERVICE, grpc_stub, idempotent=rpcclient.LLM_IDEMPOTENT)


class LLMClient:
    """gRPC client of mnemo.v1.LLMService (embeddings, model defaults)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel: grpc.aio.Channel | None = None
        self._stub: llm_pb2_grpc.LLMServiceStub | None = None
        self._defaults: ModelDefaults | None = None
        self._models: ModelListCache | None = None
        self._wrap: Callable[[Any], Any] = _over_grpc

    def use(self, wrap: Callable[[Any], Any]) -> None:
        """Calls go through `wrap(grpc_stub)` (e.g. a NATS client with gRPC as its fallback), which
        raises domain errors (`mnemo.common.rpcclient`)."""
        self._wrap = wrap
        self._stub = None

    def _get_stub(self) -> llm_pb2_grpc.LLMServiceStub:
        if self._stub is None:
            if self._channel is None:
                self._channel = client_channel(self.target)
            self._stub = self._wrap(llm_pb2_grpc.LLMServiceStub(self._channel))
        return self._stub

    def _model_list(self) -> ModelListCache:
        """The llm-proxy's model list, kept until `refresh()` (defaults do not change while it runs)."""
        stub = self._get_stub()
        if self._models is None or self._models.llm is not stub:
            self._models = ModelListCache(stub, ttl=math.inf)
        return self._models

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None

    async def defaults(self) -> ModelDefaults:
        """Default chat model and embedding model + dimension (asked once, then cached)."""
        if self._defaults is None:
            try:
                resp = await self._model_list().list()
            except MnemoError as exc:
                raise Unavailable(f"llm-proxy unavailable at {self.target}: {exc}") from None
            dim = 0
            for m in resp.models:
                if m.name == resp.default_embedding_model:
                    dim = m.embedding_dim
            self._defaults = ModelDefaults(resp.default_model, resp.default_embedding_model, dim)
        return self._defaults

    async def embedding_dim(self, model: str) -> int:
        """The dimension of `model` as the llm-proxy's registry reports it (0 = unknown)."""
        defaults = await self.defaults()
        if not model or model == defaults.embedding_model:
            return defaults.embedding_dim
        resp = await self._model_list().refresh()  # a model the proxy may have been given since
        return next((m.embedding_dim for m in resp.models if m.name == model), 0)

    async def embed(self, texts: list[str], *, model: str = "", expected_dim: int = 0,
                    tenant_id: str = "", agent_id: str = "", background: bool = False) -> list[list[float]]:
        """Embeddings of `texts` as float lists (see `embed_vectors`)."""
        return [v.tolist() for v in await self.embed_vectors(texts, model=model, expected_dim=expected_dim,
                                                             tenant_id=tenant_id, agent_id=agent_id,
                                                             background=background)]

    async def embed_vectors(self, texts: list[str], *, model: str = "", expected_dim: int = 0,
                            tenant_id: str = "", agent_id: str = "", background: bool = False) -> list[np.ndarray]:
        """Embeddings of `texts` as float32 vectors, in batches; FailedPrecondition when the dimension is
        not `expected_dim`. `background`: nobody waits for them (recall indexing); the llm-proxy runs
        them behind the rest."""
        out: list[np.ndarray] = []
        for i in range(0, len(texts), EMBED_BATCH):
            batch = texts[i:i + EMBED_BATCH]
            try:
                resp = await self._get_stub().Embed(
                    llm_pb2.EmbedRequest(model=model, texts=batch, tenant_id=tenant_id, agent_id=agent_id,
                                         priority="background" if background else "", packed=True),
                    timeout=60)
            except MnemoError as exc:
                if isinstance(exc, InvalidArgument):
                    raise InvalidArgument(f"embedding failed: {exc}") from None
                raise Unavailable(f"embedding failed ({exc.code}): {exc}") from None
            if len(resp.embeddings) != len(batch):
                raise Unavailable(f"llm-proxy returned {len(resp.embeddings)} embeddings for {len(batch)} texts")
            for vector in to_vectors(resp.embeddings):
                if expected_dim and len(vector) != expected_dim:
                    raise FailedPrecondition(
                        f"embedding dimension mismatch: model {resp.model or model!r} returned "
                        f"{len(vector)} dimensions, the agent's index uses {expected_dim}")
                out.append(vector)
        return out
