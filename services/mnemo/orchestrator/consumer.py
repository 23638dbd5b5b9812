"""Turns from the JetStream TURNS work queue: a durable pull consumer with explicit acks, bounded
concurrency, per-agent arrival order and step leases (docs/architecture.md).

This module is the JetStream side (pulls, acks, naks, spans, metrics); the rules it follows
(order, lease decisions, retry delays, when to give a turn up) are in scheduling.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NoStreamResponseError
from opentelemetry.trace import Status, StatusCode

from mnemo.common import metrics, subjects, telemetry
from mnemo.common.errors import MnemoError
from mnemo.common.natsutil import ensure_jetstream, first_sequence, quietly
from mnemo.common.telemetry import span
from mnemo.orchestrator.leases import Lease, LeaseManager
from mnemo.orchestrator.pauses import TurnWaits
from mnemo.orchestrator.pulling import SlotPuller, ensure_consumer
from mnemo.orchestrator.runner import TurnRunner
from mnemo.orchestrator.scheduling import MAX_DELIVERIES, AgentOrder, DeliveryPolicy, Fail, FailureCounts, may_run
from mnemo.v1 import common_pb2

__all__ = ["MAX_DELIVERIES", "TurnConsumer"]

log = logging.getLogger(__name__)

PULL_EXPIRES = 1.0          # seconds a pull request stays open
MAX_BATCH = 64
CONSUMER_CHECK = 2.0        # seconds between checks that the consumer exists, while pulls time out
STOP_HAND_BACK_DELAY = 0.2  # nak delay of a turn delivered while this replica stops

# NATS client errors (connection lost, JetStream API errors) are transient too.
POLICY = DeliveryPolicy(transient=(TimeoutError, ConnectionError, nats.errors.Error))


class TurnConsumer:
    def __init__(self, js: JetStreamContext, leases: LeaseManager, runner: TurnRunner,
                 concurrency: int, ack_wait: float, policy: DeliveryPolicy = POLICY,
                 replicas: int | None = None) -> None:
        self.js = js
        self.replicas = replicas  # JetStream replication factor for what a NATS restart lost
        self.leases = leases
        self.runner = runner
        self.ack_wait = ack_wait
        self.policy = policy
        self._failures = FailureCounts()
        self.puller = SlotPuller(concurrency, self._handle, PULL_EXPIRES)
        self._order = AgentOrder()
        self._loop_task: asyncio.Task[None] | None = None
        self._restore_lock = asyncio.Lock()
        self._restored_at = 0.0
        self._checked_at = 0.0

    # ---- the consumer ---------------------------------------------------------------------------
    async def _ensure_consumer(self) -> None:
        """Create the durable pull consumer unless it exists (idempotent, any replica)."""
        self._checked_at = time.monotonic()
        await ensure_consumer(self.js, subjects.TURNS_STREAM, ConsumerConfig(
            durable_name=subjects.ORCHESTRATOR_CONSUMER, ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait, max_deliver=-1, filter_subject="mnemo.turns.>",
            deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1, max_waiting=512))

    async def _restore_streams(self) -> None:
        """Re-create what a NATS restart can lose (the memory-stored leases bucket), idempotently."""
        async with self._restore_lock:
            if time.monotonic() - self._restored_at < 1.0:
                return  # a concurrent turn just did it
            try:
                await ensure_jetstream(self.js, self.replicas)
                self._restored_at = time.monotonic()
            except Exception as exc:
                log.warning("JetStream not restored yet: %s", exc)

    async def start(self) -> None:
        await self._ensure_consumer()
        await self.puller.bind(self.js, subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)
        self._loop_task = asyncio.create_task(self._pull_loop(), name="turn-pull")

    async def stop(self) -> None:
        """Stop pulling; turns still running are interrupted and handed back (nak) for redelivery."""
        await self.puller.stop(self._loop_task, STOP_HAND_BACK_DELAY)

    # ---- pulling --------------------------------------------------------------------------------
    async def _pull_loop(self) -> None:
        """Pull the turns that are queued (as many as there are free slots) and start each one at
        once. A pull returns as soon as one turn is there: nats-py's fetch of one message waits for
        it (until the request expires), and its fetch of a batch asks with no_wait + expires (the
        server answers with what it has the moment it has anything).

        The batch asked for is the backlog the last delivered turn reported (its num_pending), so an
        idle queue is waited on with a one-message pull: the server ends it with that turn, with no
        status message to read, and no slot beyond the first is taken and given back per turn."""
        failures = 0   # consecutive pulls JetStream did not answer
        queued = 1     # turns to ask for: 1 + the backlog at the last delivery
        while not self.puller.stopping:
            free = await self.puller.reserve(queued, MAX_BATCH)
            try:
                msgs = await self.puller.fetch(free)
            except asyncio.CancelledError:
                raise
            except TimeoutError:  # no turn queued (or the consumer is gone: checked now and then)
                msgs = []
                queued = 1
                if time.monotonic() - self._checked_at > CONSUMER_CHECK:
                    failures = await self._check_consumer(failures)
            except Exception as exc:  # JetStream not there (yet): back off, then check the consumer
                failures += 1
                delay = self.policy.pull.delay(failures)
                log.warning("pull failed (%r), retrying in %.1fs", exc, delay)
                self.puller.release(free)
                await asyncio.sleep(delay)
                failures = await self._check_consumer(failures)
                queued = 1
                continue
            else:
                failures = 0
                queued = 1 + _backlog(msgs[-1]) if msgs else 1
            await self.puller.start(msgs, free)

    async def _check_consumer(self, failures: int) -> int:
        """Make sure the consumer exists; the count of consecutive failures after the check."""
        try:
            await self._ensure_consumer()
        except Exception as exc:
            log.warning("turn consumer not reachable yet: %s", exc)
            return failures + 1
        return 0

    # ---- one turn -------------------------------------------------------------------------------
    async def _handle(self, msg: Msg) -> None:
        try:
            turn = common_pb2.TurnRequest.FromString(msg.data)
        except Exception:
            log.error("dropping a malformed turn request on %s", msg.subject)
            await quietly(msg.term())
            return
        seq = msg.metadata.sequence.stream
        key = subjects.agent_key(turn.tenant_id, turn.agent_id)
        # Arrival order on this replica: wait for its own earlier turns of the agent.
        try:
            await self._order.enter(key, seq)
        except asyncio.CancelledError:  # stopping: hand the turn back for another replica
            await asyncio.shield(quietly(msg.nak()))
            raise
        try:
            # The turn span comes first: the state read below already belongs to the turn's trace.
            with span("orchestrator.turn", tracer="mnemo.orchestrator", parent=dict(msg.headers or {}),
                      attributes={"mnemo.agent_id": turn.agent_id, "mnemo.tenant_id": turn.tenant_id,
                                  "mnemo.turn_id": turn.turn_id}) as turn_span:
                await self._claim_and_run(msg, turn, seq, key, turn_span)
        finally:
            self._order.leave(key)

    async def _claim_and_run(self, msg: Msg, turn: common_pb2.TurnRequest, seq: int, key: str,
                             turn_span: Any) -> None:
        """Order check, lease, state read; then run the turn (or hand it back for later)."""
        # Order check, lease and the agent's state in one round trip (the CommitStep CAS protects
        # against a state read while an earlier holder was still finishing). A paused turn's call
        # resolutions are not ordered behind the agent's queued turns, which wait for them.
        first = self._first_pending(msg.subject) if not turn.HasField("resolution") else _nothing()
        parts = (asyncio.ensure_future(first),
                 asyncio.ensure_future(self.leases.acquire(key)),
                 asyncio.ensure_future(self.runner.prefetch(turn)))
        # When this replica gave the agent's lease back last (its previous turn ran here), the claim
        # all but surely succeeds: the turn starts on the state alone, and the runner awaits the
        # claim before anything but the first model call (TurnRunner.run).
        speculate = not turn.HasField("resolution") and self.leases.likely_ours(key)
        try:
            await asyncio.wait(parts[2:] if speculate else parts)  # (a cancel here leaves them running)
        except asyncio.CancelledError:  # stopping: give back what the claim took
            await asyncio.shield(self._drop_claim(msg, parts))
            raise
        claim = asyncio.ensure_future(self._confirm(seq, parts[0], parts[1]))
        deliveries = msg.metadata.num_delivered
        prefetched = _outcome(parts[2])
        # (prefetch returns a domain error as a value: run() reports it or retries it)
        if isinstance(prefetched, BaseException) and not isinstance(prefetched, MnemoError):
            lease, refused = await self._settle(claim)  # NATS restarting or unreachable: hand back
            failure = refused.failure if refused is not None and refused.failure is not None else prefetched
            await self._postpone(msg, turn, lease, failure, deliveries, turn_span)
            return
        if not speculate:
            _, refused = await self._settle(claim)
            if refused is not None:
                await self._refused(msg, turn, refused, deliveries, turn_span)
                return
        await self._run(msg, turn, seq, claim, prefetched, turn_span)

    async def _confirm(self, seq: int, first: asyncio.Future[Any], lease: asyncio.Future[Any]) -> Lease:
        """The turn's lease once the order check and the lease write are answered; NotClaimed when
        NATS failed either, an earlier turn of the agent is still queued, or another replica holds
        the lease."""
        await asyncio.wait((first, lease))
        first_seq, taken = _outcome(first), _outcome(lease)
        held = taken if isinstance(taken, Lease) else None
        failure = next((r for r in (first_seq, taken) if isinstance(r, BaseException)), None)
        if failure is not None:
            raise NotClaimed(held, failure)
        if not may_run(seq, first_seq, held is not None):
            raise NotClaimed(held)
        assert held is not None
        return held

    @staticmethod
    async def _settle(claim: asyncio.Future[Lease]) -> tuple[Lease | None, NotClaimed | None]:
        """The claim's lease (None when none was taken) and its refusal (None when claimed), once
        answered. Waiting does not cancel the claim when the waiter is cancelled."""
        await asyncio.wait((claim,))
        exc = claim.exception()
        if exc is None:
            return claim.result(), None
        assert isinstance(exc, NotClaimed), exc
        return exc.lease, exc

    async def _refused(self, msg: Msg, turn: common_pb2.TurnRequest, refused: NotClaimed, deliveries: int,
                       turn_span: Any) -> None:
        """Hand back a turn whose claim failed: after a backoff when NATS failed, after the order
        backoff when an earlier turn of the agent runs on another replica."""
        if refused.failure is not None:
            await self._postpone(msg, turn, refused.lease, refused.failure, deliveries, turn_span)
            return
        if refused.lease is not None:
            await self.leases.release(refused.lease)
        await quietly(msg.nak(delay=self.policy.order_delay(deliveries)))
        turn_span.set_attribute("mnemo.deferred", "order")

    async def _drop_claim(self, msg: Msg, parts: tuple[asyncio.Future[Any], ...]) -> None:
        outcomes = await asyncio.gather(*parts, return_exceptions=True)
        if isinstance(outcomes[1], Lease):
            await self.leases.release(outcomes[1])
        await quietly(msg.nak())

    async def _postpone(self, msg: Msg, turn: common_pb2.TurnRequest, lease: Lease | None,
                        failure: BaseException, deliveries: int, turn_span: Any) -> None:
        await self._release(lease)
        if isinstance(failure, NoStreamResponseError):
            await self._restore_streams()
        delay = self.policy.retry_delay(deliveries, failure)
        log.warning("turn %s postponed (%r), retrying in %.1fs", turn.turn_id, failure, delay)
        await quietly(msg.nak(delay=delay))
        turn_span.set_attribute("mnemo.deferred", "unavailable")
        if not self.policy.is_transient(failure):
            log.error("turn %s: unexpected failure while claiming it", turn.turn_id, exc_info=failure)
            turn_span.record_exception(failure)
            turn_span.set_status(Status(StatusCode.ERROR, str(failure)[:200]))

    async def _run(self, msg: Msg, turn: common_pb2.TurnRequest, seq: int, claim: asyncio.Future[Lease],
                   prefetched: common_pb2.AgentState | MnemoError, turn_span: Any) -> None:
        """Run a turn whose claim is confirmed or on its way (`claim`); whatever the run did, the
        claim decides first: a refused claim hands the turn back untouched."""
        refresher = asyncio.create_task(self._keep_alive(msg, claim))
        started = time.perf_counter()
        metrics.TURNS_IN_FLIGHT.add(1)
        outcome = "error"
        deliveries = msg.metadata.num_delivered
        try:
            failed: Exception | None = None
            try:
                stop = await self.runner.run(turn, seq, telemetry.inject(), prefetched,
                                             claim=None if claim.done() else claim)
            except asyncio.CancelledError:
                refresher.cancel()
                await asyncio.shield(self._hand_back(msg, claim))
                raise
            except Exception as exc:
                failed = exc
            refresher.cancel()
            lease, refused = await self._settle(claim)
            if refused is not None:
                outcome = "waiting"
                await self._refused(msg, turn, refused, deliveries, turn_span)
                return
            if isinstance(failed, TurnWaits):  # queued behind a paused turn, or a timer before its deadline
                outcome = "waiting"
                turn_span.set_attribute("mnemo.deferred", "paused" if failed.delay is None else "timer")
                delay = self.policy.hold_delay(deliveries, failed.delay)
                await asyncio.gather(msg.nak(delay=delay), self._release(lease), return_exceptions=True)
                return
            if failed is not None:
                turn_span.record_exception(failed)
                turn_span.set_status(Status(StatusCode.ERROR, str(failed)[:200]))
                await self._on_error(msg, turn, failed)
                await self._release(lease)
                return
            turn_span.set_attribute("mnemo.stop_reason", stop or "already_done")
            outcome = stop or "already_done"
            self._failures.forget(turn.turn_id)
            # Double ack: the turn is gone from the work queue before the agent's next turn checks order.
            await asyncio.gather(msg.ack_sync(), self._release(lease), return_exceptions=True)
        finally:
            metrics.TURNS_IN_FLIGHT.add(-1)
            if outcome != "waiting":  # handed back to run later: not a turn that ran
                metrics.TURN_LATENCY.record(time.perf_counter() - started)
                metrics.TURNS_TOTAL.add(1, {"stop_reason": outcome})

    async def _release(self, lease: Lease | None) -> None:
        if lease is not None:
            await self.leases.release(lease)

    async def _first_pending(self, subject: str) -> int | None:
        """Stream sequence of the oldest turn still queued for this agent."""
        return await first_sequence(self.js, subjects.TURNS_STREAM, subject)

    async def _hand_back(self, msg: Msg, claim: asyncio.Future[Lease]) -> None:
        lease, _ = await self._settle(claim)
        await asyncio.gather(msg.nak(), self._release(lease), return_exceptions=True)

    async def _keep_alive(self, msg: Msg, claim: asyncio.Future[Lease]) -> None:
        lease, _ = await self._settle(claim)
        if lease is None:
            return
        period = max(0.2, min(self.leases.ttl, self.ack_wait) / 3)
        while True:
            await asyncio.sleep(period)
            await asyncio.gather(self.leases.refresh(lease), msg.in_progress(), return_exceptions=True)

    async def _on_error(self, msg: Msg, turn: common_pb2.TurnRequest, exc: Exception) -> None:
        verdict = self.policy.after_failure(exc, self._failures.failed(turn.turn_id))
        if not isinstance(verdict, Fail):
            log.warning("turn %s failed (%s), retrying in %.1fs", turn.turn_id, exc, verdict.delay)
            await quietly(msg.nak(delay=verdict.delay))  # if the nak is lost, ack_wait redelivers
            return
        log.exception("turn %s failed", turn.turn_id, exc_info=exc)
        self._failures.forget(turn.turn_id)
        try:
            await self.runner.fail(turn, verdict.message, verdict.code, {})
        finally:
            await quietly(msg.term())


class NotClaimed(Exception):
    """A turn's claim failed: `failure` (NATS did not answer the order check or the lease write), or
    none (an earlier turn of the agent is still queued, or another replica holds its lease).
    `lease`: the lease taken anyway, to give back."""

    def __init__(self, lease: Lease | None, failure: BaseException | None = None) -> None:
        super().__init__(f"turn not claimed: {failure!r}" if failure is not None else "turn not claimed yet")
        self.lease = lease
        self.failure = failure


async def _nothing() -> None:
    return None


def _backlog(msg: Msg) -> int:
    """Turns still queued for the consumer when `msg` was delivered (0 when unknown)."""
    try:
        return max(0, msg.metadata.num_pending)
    except (nats.errors.NotJSMessageError, ValueError):  # no JetStream ack subject to read it from
        return 0


def _outcome(part: asyncio.Future[Any]) -> Any:
    """A finished part's result, or its exception as a value."""
    exc = part.exception()
    return exc if exc is not None else part.result()
