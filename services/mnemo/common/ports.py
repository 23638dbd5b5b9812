"""Ports: what a component needs of another service, as typed protocols.

Domain code depends on these, never on a transport. The adapter that implements them is
`mnemo.common.rpcclient.RpcClient` (NATS request-reply or gRPC); tests may pass anything with the
same methods. Every method raises the domain errors of `mnemo.common.errors`. Method names are the
RPC names of the proto contract (`protos/mnemo/v1/`), so a port method is found by its RPC's name.
"""

from __future__ import annotations

from typing import Protocol

from mnemo.v1 import common_pb2, llm_pb2, memory_pb2


class MemoryPort(Protocol):
    """The memory service as the step loop uses it: state, commits, memory functions, presets, the
    tenant's MCP servers."""

    async def GetContext(self, request: common_pb2.AgentRef, timeout: float | None = None,
                         ) -> common_pb2.AgentState: ...

    async def CommitStep(self, request: memory_pb2.CommitStepRequest, timeout: float | None = None,
                         ) -> memory_pb2.CommitStepResponse: ...

    async def GetTemplate(self, request: memory_pb2.TemplateRef, timeout: float | None = None,
                          ) -> common_pb2.Template: ...

    async def SearchRecall(self, request: memory_pb2.SearchRecallRequest, timeout: float | None = None,
                           ) -> memory_pb2.SearchRecallResponse: ...

    async def InsertArchival(self, request: memory_pb2.InsertArchivalRequest, timeout: float | None = None,
                             ) -> memory_pb2.InsertArchivalResponse: ...

    async def SearchArchival(self, request: memory_pb2.SearchArchivalRequest, timeout: float | None = None,
                             ) -> memory_pb2.SearchArchivalResponse: ...

    async def GetMcpServer(self, request: memory_pb2.McpServerRef, timeout: float | None = None,
                           ) -> memory_pb2.McpServer: ...
    async def UpdateSharedBlock(self, request: memory_pb2.UpdateSharedBlockRequest, timeout: float | None = None,
                                ) -> memory_pb2.SharedBlock: ...


class ConsolidationMemoryPort(MemoryPort, Protocol):
    """What a memory consolidation needs besides the step loop's calls: a checkpoint first, and the
    agent's archival duplicates."""

    async def CreateCheckpoint(self, request: memory_pb2.CreateCheckpointRequest, timeout: float | None = None,
                               ) -> common_pb2.Checkpoint: ...

    async def FindArchivalDuplicates(self, request: memory_pb2.FindArchivalDuplicatesRequest,
                                     timeout: float | None = None,
                                     ) -> memory_pb2.FindArchivalDuplicatesResponse: ...


class LLMPort(Protocol):
    """The llm-proxy: chat, embeddings, the model registry."""

    async def Chat(self, request: llm_pb2.ChatRequest, timeout: float | None = None) -> llm_pb2.ChatResponse: ...

    async def Embed(self, request: llm_pb2.EmbedRequest, timeout: float | None = None) -> llm_pb2.EmbedResponse: ...

    async def ListModels(self, request: llm_pb2.ListModelsRequest, timeout: float | None = None,
                         ) -> llm_pb2.ListModelsResponse: ...

    async def CountTokens(self, request: llm_pb2.CountTokensRequest, timeout: float | None = None,
                          ) -> llm_pb2.CountTokensResponse: ...
