"""The consolidation consumer: requests from the JetStream work queue CONSOLIDATION run a memory
consolidation of their agent in the background, between its turns (docs/architecture.md).

Never on the turn path: memory asks after a turn completed (or a user asks), and this consumer, in
every orchestrator replica, takes the request from the work queue. Never beside a turn: the job holds
the agent's step lease while it runs (a turn arriving meanwhile waits its turn, as it would behind an
earlier turn), and its commit is a compare-and-set like every step. A request that is not due yet
(an idle timer) is handed back with the delay left; a busy agent's after a short delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mnemo.common import ids, subjects
from mnemo.common.errors import Conflict, InvalidArgument, MnemoError, NotFound
from mnemo.common.natsutil import quietly
from mnemo.common.ports import ConsolidationMemoryPort, LLMPort
from mnemo.common.retry import Backoff
from mnemo.common.telemetry import span
from mnemo.orchestrator import consolidation as plan
from mnemo.orchestrator.leases import Lease, LeaseManager
from mnemo.orchestrator.pulling import SlotPuller, ensure_consumer
from mnemo.v1 import common_pb2, memory_pb2

log = logging.getLogger(__name__)

BUSY_DELAY = 1.0             # a turn of the agent runs: look again after this
RETRY = Backoff(base=1.0, cap=60.0)
COMMIT_RETRIES = 3
PULL_EXPIRES = 1.0
MAX_DELIVERIES = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """Ack (`later` None), or hand back for `later` seconds."""

    later: float | None = None
    ran: bool = False


class Consolidator:
    """A durable pull consumer (`consolidator`) on CONSOLIDATION, shared by the orchestrator replicas."""

    def __init__(self, js: JetStreamContext, leases: LeaseManager, memory: ConsolidationMemoryPort, llm: LLMPort,
                 concurrency: int = 2, ack_wait: float = 60.0) -> None:
        self.js = js
        self.leases = leases
        self.memory = memory
        self.llm = llm
        self.ack_wait = ack_wait
        self.puller = SlotPuller(concurrency, self._handle, PULL_EXPIRES)
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_consumer(self.js, subjects.CONSOLIDATION_STREAM, ConsumerConfig(
            durable_name=subjects.CONSOLIDATOR_CONSUMER, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
            max_deliver=-1, filter_subject="mnemo.consolidate.>", deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=-1))
        await self.puller.bind(self.js, subjects.CONSOLIDATION_STREAM, subjects.CONSOLIDATOR_CONSUMER)
        self._loop = asyncio.create_task(self._pull(), name="consolidation-pull")

    async def stop(self) -> None:
        """Stop pulling; requests in progress are handed back for another replica."""
        await self.puller.stop(self._loop)

    async def _pull(self) -> None:
        failures = 0
        while not self.puller.stopping:
            await self.puller.reserve(1, 1)
            try:
                msgs = await self.puller.fetch(1)
            except TimeoutError:
                self.puller.release(1)
                continue
            except asyncio.CancelledError:
                self.puller.release(1)
                raise
            except Exception as exc:  # JetStream restarting: back off
                self.puller.release(1)
                failures += 1
                log.warning("consolidation pull failed (%r)", exc)
                await asyncio.sleep(RETRY.delay(failures))
                continue
            failures = 0
            await self.puller.start(msgs, 1)

    async def _handle(self, msg: Msg) -> None:
        try:
            req = common_pb2.ConsolidationRequest.FromString(msg.data)
        except Exception:
            log.error("dropping a malformed consolidation request on %s", msg.subject)
            await quietly(msg.term())
            return
        deliveries = msg.metadata.num_delivered
        with span("orchestrator.consolidation", tracer="mnemo.orchestrator", parent=dict(msg.headers or {}),
                  attributes={"mnemo.agent_id": req.agent_id, "mnemo.tenant_id": req.tenant_id}) as s:
            try:
                outcome = await self.run(req, msg)
            except asyncio.CancelledError:
                await asyncio.shield(quietly(msg.nak()))
                raise
            except Exception as exc:
                retry = isinstance(exc, (nats.errors.Error, TimeoutError, ConnectionError)) or (
                    isinstance(exc, MnemoError) and exc.retryable)
                if retry and deliveries < MAX_DELIVERIES:
                    log.warning("consolidation of %s failed (%s), retried", req.agent_id, exc)
                    await quietly(msg.nak(delay=RETRY.delay(deliveries, getattr(exc, "retry_after", None))))
                else:
                    log.error("consolidation of %s given up: %s", req.agent_id, exc)
                    await quietly(msg.term())
                s.set_attribute("mnemo.error", type(exc).__name__)
                return
            s.set_attribute("mnemo.consolidated", outcome.ran)
            if outcome.later is None:
                await quietly(msg.ack())
            else:
                await quietly(msg.nak(delay=outcome.later))

    async def run(self, req: common_pb2.ConsolidationRequest, msg: Msg | None = None) -> Outcome:
        """Consolidate the request's agent if it is due (see the module docstring)."""
        ref = common_pb2.AgentRef(tenant_id=req.tenant_id, agent_id=req.agent_id)
        try:
            state = await self.memory.GetContext(ref)
        except (NotFound, InvalidArgument):
            return Outcome()  # the agent is gone
        when = plan.due(state, req, datetime.now(UTC))
        if when.reason is None:
            return Outcome(when.wait if when.wait > 0 else None)
        lease = await self.leases.acquire(subjects.agent_key(req.tenant_id, req.agent_id))
        if lease is None:
            return Outcome(BUSY_DELAY)
        keep_alive = asyncio.create_task(self._keep_alive(lease, msg))
        try:
            for _ in range(COMMIT_RETRIES):
                state = await self.memory.GetContext(ref)  # under the lease: no step moves it now
                when = plan.due(state, req, datetime.now(UTC))
                if when.reason is None:
                    return Outcome(when.wait if when.wait > 0 else None)
                # Step (and event) ids unique across agents and runs: the EVENTS stream drops repeated ids.
                step_id = f"consolidation-{req.agent_id}-{state.consolidation.runs + 1}:1"
                try:
                    await self._consolidate(state, when.reason, step_id)
                    return Outcome(ran=True)
                except Conflict:
                    continue  # a user edit came between the read and the commit: again, from the new state
            raise Conflict(f"agent {req.agent_id} kept changing during its consolidation")
        finally:
            keep_alive.cancel()
            await self.leases.release(lease)

    async def _consolidate(self, state: common_pb2.AgentState, reason: str, step_id: str) -> None:
        ref = common_pb2.AgentRef(tenant_id=state.config.tenant_id, agent_id=state.config.id)
        groups = (await self.memory.FindArchivalDuplicates(memory_pb2.FindArchivalDuplicatesRequest(ref=ref))).groups
        task = plan.task_of(state, list(groups))
        model = state.config.consolidation.model or state.config.model
        checkpoint_id = ""
        decided = plan.Plan()
        if not task.empty:
            cp = await self.memory.CreateCheckpoint(memory_pb2.CreateCheckpointRequest(
                ref=ref, name=f"before memory consolidation {ids.now_iso()}"))
            if cp.revision != state.revision:
                raise Conflict("the agent changed before its checkpoint")
            checkpoint_id = cp.id
            response = await self.llm.Chat(plan.chat_request(task, state, model), timeout=300)
            decided = plan.parse_reply(response, task)
            for note in decided.notes:
                log.info("consolidation of %s: %s", state.config.id, note)
        commit = plan.commit_of(state, task, decided, checkpoint_id=checkpoint_id, reason=reason, step_id=step_id,
                                model=model, now=ids.now_iso())
        await self.memory.CommitStep(commit, timeout=30)

    async def _keep_alive(self, lease: Lease, msg: Msg | None) -> None:
        period = max(0.2, min(self.leases.ttl, self.ack_wait) / 3)
        while True:
            await asyncio.sleep(period)
            parts: list[Awaitable[object]] = [self.leases.refresh(lease)]
            if msg is not None:
                parts.append(msg.in_progress())
            await asyncio.gather(*parts, return_exceptions=True)
