"""Turns from the JetStream TURNS work queue: a durable pull consumer with explicit acks, bounded
concurrency, per-agent arrival order and step leases (DESIGN.md §3)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import grpc
import nats.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NoStreamResponseError, NotFoundError
from opentelemetry.trace import Status, StatusCode

from mnemo.common import metrics, subjects, telemetry
from mnemo.common.natsutil import ensure_jetstream
from mnemo.common.telemetry import span
from mnemo.orchestrator.events import StepEvents
from mnemo.orchestrator.leases import Lease, LeaseManager
from mnemo.orchestrator.runner import TurnRunner
from mnemo.v1 import common_pb2

log = logging.getLogger(__name__)

ORDER_RETRY_DELAY = 0.02   # nak delay while an earlier turn of the agent runs elsewhere
PULL_EXPIRES = 1.0         # seconds a pull request stays open
MAX_BATCH = 64
MAX_DELIVERIES = 20        # then the turn is reported failed and dropped
MAX_BACKOFF = 2.0          # seconds between pull attempts while JetStream is unreachable
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED}


class TurnConsumer:
    def __init__(self, js: JetStreamContext, leases: LeaseManager, runner: TurnRunner,
                 concurrency: int, ack_wait: float) -> None:
        self.js = js
        self.leases = leases
        self.runner = runner
        self.concurrency = max(1, concurrency)
        self.ack_wait = ack_wait
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._local: dict[str, asyncio.Event] = {}   # agent key -> set when its running turn ends
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._reserved = 0                       # slots held by the open pull request
        self._request_done = asyncio.Event()     # no pull request open
        self._request_done.set()
        self.psub: Any = None
        self._backoff = 0.0                      # > 0 while JetStream does not answer pulls
        self._restore_lock = asyncio.Lock()
        self._restored_at = 0.0

    async def _ensure_consumer(self) -> None:
        """Create the durable pull consumer unless it exists (idempotent, any replica)."""
        config = ConsumerConfig(
            durable_name=subjects.ORCHESTRATOR_CONSUMER, ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait, max_deliver=-1, filter_subject="mnemo.turns.>",
            deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1, max_waiting=512)
        try:
            await self.js.consumer_info(subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)
        except NotFoundError:
            try:
                await self.js.add_consumer(subjects.TURNS_STREAM, config)
            except Exception as exc:
                log.debug("consumer create: %s", exc)

    async def _restore_streams(self) -> None:
        """Re-create what a NATS restart can lose (the memory-stored leases bucket), idempotently."""
        async with self._restore_lock:
            if time.monotonic() - self._restored_at < 1.0:
                return  # a concurrent turn just did it
            try:
                await ensure_jetstream(self.js)
                self._restored_at = time.monotonic()
            except Exception as exc:
                log.warning("JetStream not restored yet: %s", exc)

    async def _recover(self) -> None:
        """JetStream did not answer our pull (NATS restarting, consumer lost): wait, then make sure
        the consumer exists again before the next pull."""
        await asyncio.sleep(self._backoff)
        try:
            await self._ensure_consumer()
        except Exception as exc:
            log.warning("turn consumer not reachable yet: %s", exc)
            self._backoff = min(MAX_BACKOFF, self._backoff * 2)
            return
        self._backoff = 0.0

    async def start(self) -> None:
        await self._ensure_consumer()
        nc = self.js._nc
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{subjects.TURNS_STREAM}.{subjects.ORCHESTRATOR_CONSUMER}"
        self.psub = await nc.subscribe(self._inbox, cb=self._on_message)
        self._loop_task = asyncio.create_task(self._pull_loop(), name="turn-pull")

    async def stop(self) -> None:
        """Stop pulling; turns still running are interrupted and handed back (nak) for redelivery."""
        self._stopping = True
        if self._loop_task:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        # Our last pull request must expire before we leave: a turn delivered to it afterwards
        # would wait a whole ack_wait.
        try:
            await asyncio.wait_for(self._request_done.wait(), PULL_EXPIRES + 0.5)
        except TimeoutError:
            pass
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.psub is not None:
            try:
                await self.psub.unsubscribe()
            except Exception:
                pass

    async def _pull_loop(self) -> None:
        """Keep one pull request open for as many turns as there are free slots. Turns are handled
        the moment they arrive (a batch fetch would wait for the whole batch or its expiry)."""
        while not self._stopping:
            await self._request_done.wait()
            if self._backoff:
                await self._recover()
                continue
            await self._slots.acquire()  # at least one free slot
            free = 1
            while free < MAX_BATCH and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            self._reserved = free
            self._request_done.clear()
            req = {"batch": free, "expires": int(PULL_EXPIRES * 1e9)}
            try:
                await self._nc.publish(self._next_subject, json.dumps(req).encode(), reply=self._inbox)
            except Exception as exc:
                log.warning("pull request failed: %s", exc)
                self._end_request()
                self._backoff = max(self._backoff, 0.5)
                continue
            try:  # a lost request (e.g. NATS restarted) must not stall the loop
                await asyncio.wait_for(self._request_done.wait(), PULL_EXPIRES + 2.0)
            except TimeoutError:
                self._end_request()
                self._backoff = max(self._backoff, 0.1)

    def _end_request(self) -> None:
        for _ in range(self._reserved):
            self._slots.release()
        self._reserved = 0
        self._request_done.set()

    async def _on_message(self, msg: Any) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status:
            # 404 no messages / 408 expired / 409 ...: this pull request is over.
            # 503 no responders: JetStream is not (yet) there; back off instead of spinning.
            if status == "503":
                self._backoff = max(0.1, self._backoff)
            self._end_request()
            return
        if self._reserved > 0:
            self._reserved -= 1  # the slot now belongs to this turn's task
        else:  # pragma: no cover - a delivery beyond what we asked for
            await self._slots.acquire()
        if self._reserved == 0:
            self._request_done.set()
        if self._stopping:
            self._slots.release()
            await msg.nak(delay=0.2)
            return
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _handle(self, msg: Any) -> None:
        try:
            turn = common_pb2.TurnRequest.FromString(msg.data)
        except Exception:
            log.error("dropping a malformed turn request on %s", msg.subject)
            await msg.term()
            return
        seq = msg.metadata.sequence.stream
        key = subjects.agent_key(turn.tenant_id, turn.agent_id)
        # Arrival order: wait for this replica's own earlier turn, nak for another replica's.
        while key in self._local:
            await self._local[key].wait()
        # The turn span comes first: the state read below already belongs to the turn's trace.
        with span("orchestrator.turn", tracer="mnemo.orchestrator", parent=dict(msg.headers or {}),
                  attributes={"mnemo.agent_id": turn.agent_id, "mnemo.tenant_id": turn.tenant_id,
                              "mnemo.turn_id": turn.turn_id}) as turn_span:
            await self._claim_and_run(msg, turn, seq, key, turn_span)

    async def _claim_and_run(self, msg: Any, turn: common_pb2.TurnRequest, seq: int, key: str,
                             turn_span: Any) -> None:
        """Order check, lease, state read; then run the turn (or hand it back for later)."""
        # Order check, lease and the agent's state in one round trip (the CommitStep CAS protects
        # against a state read while an earlier holder was still finishing).
        results = await asyncio.gather(
            self._first_pending(msg.subject), self.leases.acquire(key), self.runner.prefetch(turn),
            return_exceptions=True)
        # (prefetch returns its gRPC error as a value: run() reports it or retries it)
        failure = next((r for r in results if isinstance(r, BaseException)
                        and not isinstance(r, grpc.aio.AioRpcError)), None)
        if failure is not None:  # NATS restarting or unreachable: hand the turn back for later
            if isinstance(results[1], Lease):
                await self.leases.release(results[1])
            if isinstance(failure, NoStreamResponseError):
                await self._restore_streams()
            delay = min(10.0, 0.2 * 2 ** min(msg.metadata.num_delivered, 6))
            log.warning("turn %s postponed (%r), retrying in %.1fs", turn.turn_id, failure, delay)
            await _quietly(msg.nak(delay=delay))
            turn_span.set_attribute("mnemo.deferred", "unavailable")
            if not _is_transient(failure):
                raise failure
            return
        first_seq, lease, prefetched = results
        if lease is None or (first_seq is not None and first_seq < seq):
            if lease is not None:
                await self.leases.release(lease)
            # Backs off while an earlier turn of the agent runs on another replica.
            waits = max(0, min(msg.metadata.num_delivered - 1, 5))
            await msg.nak(delay=ORDER_RETRY_DELAY * 2 ** waits)
            turn_span.set_attribute("mnemo.deferred", "order")
            return
        done = asyncio.Event()
        self._local[key] = done
        refresher = asyncio.create_task(self._keep_alive(msg, lease))
        started = time.perf_counter()
        metrics.TURNS_IN_FLIGHT.add(1)
        outcome = "error"
        try:
            stop = await self.runner.run(turn, seq, telemetry.inject(), prefetched)
            turn_span.set_attribute("mnemo.stop_reason", stop or "already_done")
            outcome = stop or "already_done"
            refresher.cancel()
            # Double ack: the turn is gone from the work queue before the agent's next turn checks order.
            await asyncio.gather(msg.ack_sync(), self.leases.release(lease), return_exceptions=True)
        except asyncio.CancelledError:
            refresher.cancel()
            await asyncio.shield(self._hand_back(msg, lease))
            raise
        except Exception as exc:
            refresher.cancel()
            turn_span.record_exception(exc)
            turn_span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
            await self._on_error(msg, turn, exc)
            await self.leases.release(lease)
        finally:
            metrics.TURNS_IN_FLIGHT.add(-1)
            metrics.TURN_LATENCY.record(time.perf_counter() - started)
            metrics.TURNS_TOTAL.add(1, {"stop_reason": outcome})
            self._local.pop(key, None)
            done.set()

    async def _first_pending(self, subject: str) -> int | None:
        """Stream sequence of the oldest turn still queued for this agent."""
        try:
            first = await self.js.get_msg(subjects.TURNS_STREAM, seq=1, subject=subject, next=True)
        except NotFoundError:
            return None
        return first.seq

    async def _hand_back(self, msg: Any, lease: Any) -> None:
        await asyncio.gather(msg.nak(), self.leases.release(lease),
                             return_exceptions=True)

    async def _keep_alive(self, msg: Any, lease: Any) -> None:
        period = max(0.2, min(self.leases.ttl, self.ack_wait) / 3)
        while True:
            await asyncio.sleep(period)
            await asyncio.gather(self.leases.refresh(lease), msg.in_progress(), return_exceptions=True)

    async def _on_error(self, msg: Any, turn: common_pb2.TurnRequest, exc: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        if _is_transient(exc) and deliveries < MAX_DELIVERIES:
            delay = min(10.0, 0.2 * 2 ** deliveries)
            log.warning("turn %s failed (%s), retrying in %.1fs", turn.turn_id, exc, delay)
            await _quietly(msg.nak(delay=delay))  # if the nak is lost, ack_wait redelivers
            return
        log.exception("turn %s failed", turn.turn_id, exc_info=exc)
        code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "INTERNAL"
        ev = StepEvents(turn.turn_id, turn.tenant_id, turn.agent_id, 0)
        ev.add("turn_failed", turn_failed=common_pb2.TurnFailed(error=str(exc)[:500], code=code))
        try:
            await self.runner.publisher.publish(ev.events, {})
        finally:
            await _quietly(msg.term())


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying: a dependency or NATS briefly unavailable (restart, reconnect, timeout)."""
    return (isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _TRANSIENT) or \
        isinstance(exc, (nats.errors.Error, asyncio.TimeoutError, ConnectionError))


async def _quietly(coro: Any) -> None:
    """Await an ack/nak/term whose loss JetStream repairs by itself (redelivery after ack_wait)."""
    try:
        await coro
    except Exception as exc:
        log.debug("ack not delivered: %s", exc)

