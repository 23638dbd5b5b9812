"""gRPC wiring of the llm-proxy: `LlmProxyService` serves mnemo.v1.LLMService over the engine."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from mnemo import tokens
from mnemo.common import natsrpc, status
from mnemo.common.config import Settings
from mnemo.common.embedding_wire import to_embeddings
from mnemo.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from mnemo.common.grpcutil import GrpcServer
from mnemo.llm_proxy import config as proxy_config
from mnemo.llm_proxy import errors
from mnemo.llm_proxy.convert import chat_call, message_dict, tool_dict
from mnemo.llm_proxy.engine import CallMeta, ChatOutcome, LLMEngine, StreamEnd
from mnemo.llm_proxy.usage import UsageMeter
from mnemo.tokens import registry
from mnemo.v1 import common_pb2, llm_pb2, llm_pb2_grpc

log = logging.getLogger(__name__)

MAX_EMBED_TEXTS = 2048
EMBED_PRIORITIES = ("", "interactive", "background")
USAGE_CONNECT_WAIT = 2.0  # seconds GetUsage waits for a proxy that is still connecting to NATS


async def _abort(context: grpc.aio.ServicerContext, exc: errors.LLMError) -> NoReturn:
    """End the call with the error's status; a retry hint is also said in the text, for people."""
    message = str(exc)
    if exc.retry_after is not None and "retry after" not in message.lower() and "retry in" not in message.lower():
        exc.args = (f"{message} (retry after {exc.retry_after:.1f}s)",)
    await status.abort(context, exc)


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e6 else None


def _meta(req: Any) -> CallMeta:
    return CallMeta(req.tenant_id, req.agent_id, getattr(req, "turn_id", ""), getattr(req, "purpose", ""))


def _tool_calls(outcome: ChatOutcome) -> list[common_pb2.ToolCall]:
    return [common_pb2.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in outcome.parsed.tool_calls]


def _usage(outcome: ChatOutcome) -> common_pb2.TokenUsage:
    r = outcome.result
    return common_pb2.TokenUsage(prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                                 total_tokens=r.prompt_tokens + r.completion_tokens)


class LLMServicer(llm_pb2_grpc.LLMServiceServicer):
    """mnemo.v1.LLMService on an LLMEngine."""

    # In-process calls (common/localrpc.py): these requests are only read, and these responses are
    # built for each call, so neither is copied on the way.
    LOCAL_READONLY_REQUESTS = frozenset({"Chat", "Embed"})
    LOCAL_FRESH_RESPONSES = frozenset({"Chat", "Embed"})

    def __init__(self, engine: LLMEngine, meter: UsageMeter) -> None:
        self.engine = engine
        self.meter = meter

    async def Chat(self, request: llm_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> llm_pb2.ChatResponse:
        try:
            outcome = await self.engine.chat(chat_call(request), _meta(request), _deadline(context))
        except errors.LLMError as exc:
            await _abort(context, exc)
            raise  # unreachable: abort raises
        return llm_pb2.ChatResponse(
            message=llm_pb2.ChatMessage(role="assistant", content=outcome.parsed.content,
                                        tool_calls=_tool_calls(outcome)),
            finish_reason=outcome.result.finish_reason, usage=_usage(outcome), model=outcome.result.model,
            provider=outcome.provider, latency_ms=outcome.latency_ms, tool_call_error=outcome.parsed.error)

    async def ChatStream(self, request: llm_pb2.ChatRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[llm_pb2.ChatChunk]:
        try:
            async for item in self.engine.stream(chat_call(request), _meta(request), _deadline(context)):
                if isinstance(item, StreamEnd):
                    o = item.outcome
                    yield llm_pb2.ChatChunk(tool_calls=_tool_calls(o), finish_reason=o.result.finish_reason or "stop",
                                            usage=_usage(o), tool_call_error=o.parsed.error)
                else:
                    yield llm_pb2.ChatChunk(delta=item)
        except errors.LLMError as exc:
            await _abort(context, exc)

    async def Embed(self, request: llm_pb2.EmbedRequest, context: grpc.aio.ServicerContext) -> llm_pb2.EmbedResponse:
        if len(request.texts) > MAX_EMBED_TEXTS:
            await status.abort(context,
                InvalidArgument(f"at most {MAX_EMBED_TEXTS} texts per Embed call, got {len(request.texts)}"))
        if request.priority not in EMBED_PRIORITIES:
            await status.abort(context,
                InvalidArgument(f"priority {request.priority!r} is not one of: interactive, background"))
        try:
            model, dim, vectors, used = await self.engine.embed(
                request.model, list(request.texts), _meta(request), _deadline(context),
                background=request.priority == "background")
        except errors.LLMError as exc:
            await _abort(context, exc)
            raise
        return llm_pb2.EmbedResponse(model=model, dim=dim, embeddings=to_embeddings(vectors, request.packed),
                                     usage=common_pb2.TokenUsage(prompt_tokens=used, total_tokens=used))

    async def CountTokens(self, request: llm_pb2.CountTokensRequest,
                          context: grpc.aio.ServicerContext) -> llm_pb2.CountTokensResponse:
        model = request.model or self.engine.default_model
        try:
            messages = [message_dict(m) for m in request.messages]
            tools = [tool_dict(t) for t in request.tools]
            if registry.model_info(model).embedding:
                per_text = [self.engine.embedder.count_tokens([t]) for t in request.texts]
                return llm_pb2.CountTokensResponse(total=sum(per_text), per_text=per_text,
                                                   tokenizer="wordpiece:all-minilm-l6-v2")
            per_message = [tokens.count_message(model, m) for m in messages]
            tools_n = tokens.count_tools(model, tools)
            per_text = [tokens.count_text(model, t) for t in request.texts]
            total = (sum(per_message) + (tokens.REPLY_PRIMING if messages else 0) + tools_n + sum(per_text))
        except errors.LLMError as exc:
            await _abort(context, exc)
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            await status.abort(context, FailedPrecondition(f"no tokenizer for model {model!r}: {exc}"))
            raise
        return llm_pb2.CountTokensResponse(total=total, per_message=per_message, tools=tools_n, per_text=per_text,
                                           tokenizer=tokens.tokenizer_name(model))

    async def ListModels(self, request: llm_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> llm_pb2.ListModelsResponse:
        cfg = self.engine.config
        names: list[str] = []
        for p in cfg.providers:
            names.extend(m.name for m in p.models)
        for extra in (self.engine.default_model, cfg.default_embedding_model, registry.LOCAL_EMBEDDING_MODEL):
            if extra not in names:
                names.append(extra)
        out = []
        for name in names:
            info = registry.model_info(name)
            provider = cfg.route(name)
            out.append(llm_pb2.ModelInfo(
                name=name, provider=provider.name if provider and not info.embedding else info.provider,
                context_window=info.context_window, max_output_tokens=info.max_output_tokens,
                supports_tools=info.supports_tools, embedding=info.embedding, embedding_dim=info.embedding_dim,
                tokenizer=info.tokenizer))
        return llm_pb2.ListModelsResponse(models=out, default_model=self.engine.default_model,
                                          default_embedding_model=cfg.default_embedding_model)

    async def GetUsage(self, request: llm_pb2.GetUsageRequest,
                       context: grpc.aio.ServicerContext) -> llm_pb2.GetUsageResponse:
        if not request.tenant_id:
            await status.abort(context, InvalidArgument("tenant_id is required"))
        if not self.meter.totals and not await self.meter.wait_connected(
                min(USAGE_CONNECT_WAIT, _deadline(context) or USAGE_CONNECT_WAIT)):
            await status.abort(context, Unavailable("usage metering is not connected to NATS"))
        return llm_pb2.GetUsageResponse(totals=[
            llm_pb2.UsageTotal(tenant_id=t, agent_id=a, model=m, prompt_tokens=v.prompt_tokens,
                               completion_tokens=v.completion_tokens, calls=v.calls)
            for t, a, m, v in self.meter.query(request.tenant_id, request.agent_id)])


class LlmProxyService:
    """The llm-proxy: `await start()`, then `.address`; `config` overrides file / environment."""

    def __init__(self, settings: Settings, config: proxy_config.ProxyConfig | None = None) -> None:
        self.settings = settings
        self.config = config if config is not None else proxy_config.from_settings(settings)
        self.meter = UsageMeter(settings.nats_servers, on_connect=self._serve_on_nats,
                                replicas=settings.jetstream_replicas, shared=settings.rpc_local)
        self.engine = LLMEngine(self.config, self.meter)
        self.servicer = LLMServicer(self.engine, self.meter)
        self.server = GrpcServer("llm-proxy", settings.host, settings.llm_port)
        self.server.add(llm_pb2_grpc.add_LLMServiceServicer_to_server, self.servicer, "mnemo.v1.LLMService")
        self.address = self.server.address
        self.rpc: natsrpc.NatsRpcServer | None = None
        self._warmup: asyncio.Future[None] | None = None

    async def _serve_on_nats(self, nc: Any) -> None:
        """Once NATS is reachable: answer internal calls there too (gRPC serves from the start)."""
        if self.settings.rpc_transport != "nats" or self.rpc is not None:
            return
        self.rpc = natsrpc.NatsRpcServer(nc, self.settings.rpc_group, natsrpc.LLM, natsrpc.LLM_SERVICE,
                                         self.servicer)
        await self.rpc.start()

    async def start(self) -> None:
        await self.meter.start()
        await self.server.start()
        if registry.model_info(self.engine.config.default_embedding_model).provider == "local":
            # Loading (the first time on a machine: deriving the int8 copy) while nobody waits.
            self._warmup = asyncio.get_running_loop().run_in_executor(None, self.engine.embedder.load)
        log.info("llm-proxy serving on %s: providers %s, default model %s", self.address,
                 ", ".join(f"{p.name}({p.kind})" for p in self.config.providers), self.engine.default_model)

    async def stop(self) -> None:
        """Prompt: calls still waiting for or running on a local model fail with UNAVAILABLE at once
        (nobody waits for llama.cpp to finish); remote calls get the grace period."""
        for provider in self.engine.providers.values():
            abort = getattr(provider, "abort_pending", None)
            if abort is not None:
                abort()
        if self.rpc is not None:
            await self.rpc.stop()
            self.rpc = None
        await self.server.stop(1.0)
        await self.meter.stop()
        await self.engine.close()
