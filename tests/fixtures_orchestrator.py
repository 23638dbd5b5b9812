"""Fixtures of the orchestrator: `orchestrator` (in-process, on the session NATS, with the memory
service and an llm-proxy backed by the scripted model), `orchestrator_factory` (more replicas, or
settings overrides), `agent_factory`; helpers `run_turn()` (submit a TurnRequest and collect its
events until turn_completed / turn_failed), `submit_turn()` and `EventCollector` (a JetStream
subscription on one agent's events, opened before submitting).

Usage in a test module:
    from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
    from tests.fixtures_orchestrator import agent_factory, chat_llm, orchestrator, run_turn  # noqa: F401

`chat_llm` is the real llm-proxy (`llm_service` of tests/fixtures_llm.py) on the scripted model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mnemo.common import ids, subjects
from mnemo.common.config import Settings
from mnemo.orchestrator.server import OrchestratorService
from mnemo.v1 import common_pb2, memory_pb2

try:  # the llm-proxy's own fixture, when it exists
    from tests.fixtures_llm import llm_service as _real_llm_service  # noqa: F401
    HAVE_LLM_PROXY = True
except ImportError:  # pragma: no cover
    HAVE_LLM_PROXY = False


# ---- a chat-capable llm-proxy for the orchestrator ----------------------------------------------
# With tests/fixtures_llm.py present this is the real llm-proxy (`llm_service`); until then a small
# stand-in that forwards Chat to the scripted model through the openai SDK.

if HAVE_LLM_PROXY:
    @pytest.fixture
    def chat_llm(llm_service: Any) -> str:
        return llm_service if isinstance(llm_service, str) else llm_service.address
else:  # pragma: no cover
    import grpc
    import openai

    from mnemo.common.grpcutil import GrpcServer
    from mnemo.v1 import llm_pb2, llm_pb2_grpc

    class _ChatStandin(llm_pb2_grpc.LLMServiceServicer):
        def __init__(self, base_url: str) -> None:
            self.client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0)

        async def ListModels(self, request, context):  # type: ignore[no-untyped-def]
            return llm_pb2.ListModelsResponse(models=[llm_pb2.ModelInfo(
                name="gpt-4o-mini", provider="openai", context_window=128000, supports_tools=True)],
                default_model="gpt-4o-mini")

        async def Chat(self, request, context):  # type: ignore[no-untyped-def]
            msgs = []
            for m in request.messages:
                d: dict[str, Any] = {"role": m.role, "content": m.content}
                if m.tool_calls:
                    d["tool_calls"] = [{"id": c.id, "type": "function",
                                        "function": {"name": c.name, "arguments": c.arguments}}
                                       for c in m.tool_calls]
                if m.role == "tool":
                    d["tool_call_id"] = m.tool_call_id
                msgs.append(d)
            kwargs: dict[str, Any] = {}
            if request.tools:
                kwargs["tools"] = [{"type": "function", "function": {
                    "name": t.name, "description": t.description,
                    "parameters": json.loads(t.parameters_json)}} for t in request.tools]
            try:
                resp = await self.client.chat.completions.create(
                    model=request.model, messages=msgs, max_tokens=request.max_tokens or None, **kwargs)
            except openai.BadRequestError as exc:
                code = grpc.StatusCode.OUT_OF_RANGE if "context" in str(exc) else grpc.StatusCode.INVALID_ARGUMENT
                await context.abort(code, str(exc))
            except openai.APIError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            msg = resp.choices[0].message
            out = llm_pb2.ChatMessage(role="assistant", content=msg.content or "")
            for c in msg.tool_calls or []:
                out.tool_calls.add(id=c.id, name=c.function.name, arguments=c.function.arguments)
            u = resp.usage
            return llm_pb2.ChatResponse(message=out, finish_reason=resp.choices[0].finish_reason or "",
                                        model=resp.model, usage=common_pb2.TokenUsage(
                                            prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
                                            total_tokens=u.total_tokens))

    @pytest.fixture(scope="session")
    async def chat_llm(scripted_llm_server: Any) -> AsyncIterator[str]:
        server = GrpcServer("llm-chat-standin", "127.0.0.1", 0)
        server.add(llm_pb2_grpc.add_LLMServiceServicer_to_server, _ChatStandin(scripted_llm_server.base_url),
                   "mnemo.v1.LLMService")
        await server.start()
        yield server.address
        await server.stop(0)


def orchestrator_settings(nats_url: str, **overrides: Any) -> Settings:
    return Settings(nats_url=nats_url, orchestrator_port=0, **overrides)


@pytest.fixture
async def orchestrator(nats_url: str, memory_service: Any, chat_llm: str,
                       scripted_llm: Any) -> AsyncIterator[OrchestratorService]:
    """A running OrchestratorService wired to `memory_service` and the scripted model."""
    service = OrchestratorService(orchestrator_settings(nats_url, rpc_group=memory_service.settings.rpc_group),
                                  memory_target=memory_service.address, llm_target=chat_llm)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def orchestrator_factory(nats_url: str, memory_service: Any, chat_llm: str,
                               scripted_llm: Any) -> AsyncIterator[Callable[..., Awaitable[OrchestratorService]]]:
    """`await orchestrator_factory(orchestrator_session_gap=0, ...)`: started replicas with settings
    overrides (`nats_url=` to use another server); all stopped at teardown."""
    started: list[OrchestratorService] = []

    async def make(**overrides: Any) -> OrchestratorService:
        url = overrides.pop("nats_url", nats_url)
        memory_target = overrides.pop("memory_target", memory_service.address)
        overrides.setdefault("rpc_group", memory_service.settings.rpc_group)
        service = OrchestratorService(orchestrator_settings(url, **overrides), memory_target=memory_target,
                                      llm_target=chat_llm)
        await service.start()
        started.append(service)
        return service

    yield make
    for service in started:
        await service.stop()


@pytest.fixture
def agent_factory(memory_stub: Any) -> Callable[..., Awaitable[common_pb2.AgentState]]:
    """`await agent_factory(tenant="t1", context_window=..., limits=AgentLimits(...), ...)`."""

    async def create(tenant: str = "t1", blocks: list[common_pb2.MemoryBlock] | None = None,
                     **config: Any) -> common_pb2.AgentState:
        config.setdefault("model", "gpt-4o-mini")
        return await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(
            tenant_id=tenant, config=common_pb2.AgentConfig(**config),
            persona="I am Sam, a helpful companion.", human="First name: Chad", blocks=blocks or []))

    return create


# ---- submitting turns ------------------------------------------------------------------------------

@dataclass
class TurnResult:
    turn_id: str
    events: list[common_pb2.Event] = field(default_factory=list)

    @property
    def final(self) -> common_pb2.Event:
        return self.events[-1]

    @property
    def stop_reason(self) -> str:
        return self.final.turn_completed.stop_reason if self.final.type == "turn_completed" else "failed"

    def of(self, type_: str) -> list[common_pb2.Event]:
        return [e for e in self.events if e.type == type_]

    @property
    def replies(self) -> list[str]:
        return [e.assistant_message.text for e in self.of("assistant_message")]


async def submit_turn(js: Any, tenant: str, agent: str, message: str, turn_id: str | None = None,
                      role: str = "user", max_steps: int = 0) -> str:
    turn_id = turn_id or ids.new_id("turn")
    req = common_pb2.TurnRequest(turn_id=turn_id, tenant_id=tenant, agent_id=agent, message=message,
                                 role=role, created_at=ids.now_iso(), max_steps=max_steps)
    await js.publish(subjects.turns_subject(tenant, agent), req.SerializeToString(),
                     headers={"Nats-Msg-Id": turn_id})
    return turn_id


class EventCollector:
    """A JetStream subscription on one agent's events, opened before turns are submitted."""

    def __init__(self, js: Any, tenant: str, agent: str) -> None:
        self.js = js
        self.subject = subjects.events_subject(tenant, agent)
        self.events: list[common_pb2.Event] = []
        self.sub: Any = None
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> EventCollector:
        from nats.js.api import DeliverPolicy

        async def on_msg(msg: Any) -> None:
            ev = common_pb2.Event.FromString(msg.data)
            ev.seq = msg.metadata.sequence.stream
            async with self._changed:
                self.events.append(ev)
                self._changed.notify_all()

        self.sub = await self.js.subscribe(self.subject, cb=on_msg, deliver_policy=DeliverPolicy.NEW,
                                           ordered_consumer=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sub.unsubscribe()

    async def wait_turn(self, turn_id: str, timeout: float = 20.0) -> TurnResult:
        def done() -> bool:
            return any(e.turn_id == turn_id and e.type in ("turn_completed", "turn_failed") for e in self.events)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), timeout)
        return TurnResult(turn_id, [e for e in self.events if e.turn_id == turn_id])


async def run_turn(nc: Any, tenant: str, agent: str, message: str, timeout: float = 20.0,
                   **kwargs: Any) -> TurnResult:
    """Submit one turn and return its events (up to turn_completed / turn_failed)."""
    js = nc.jetstream()
    async with EventCollector(js, tenant, agent) as events:
        turn_id = await submit_turn(js, tenant, agent, message, **kwargs)
        return await events.wait_turn(turn_id, timeout)
