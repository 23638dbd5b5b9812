"""Submitting turns to JetStream and following their events."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import overload

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mnemo.common import subjects, telemetry
from mnemo.common.ids import new_id, now_iso
from mnemo.gateway.errors import ApiError
from mnemo.gateway.events import EventHub, TurnWaiter, ends_wait, recent_window_start, replay
from mnemo.v1 import common_pb2

# JetStream drops a repeated Nats-Msg-Id within the TURNS duplicate window (120 s); a repeat of an
# idempotency key finds the first turn's events within this window (a margin over it).
REPLAY_WINDOW_SECONDS = 180.0


def turn_id_for(tenant_id: str, agent_id: str, idempotency_key: str | None) -> str:
    """A new turn id, or one derived from the client's key, scoped to tenant and agent (so two
    tenants using the same key never collide in JetStream's deduplication)."""
    if not idempotency_key:
        return new_id("turn")
    digest = hashlib.sha256(f"{tenant_id}\x00{agent_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"turn-{digest[:32]}"


@dataclass
class SubmittedTurn:
    """A turn accepted by JetStream, with the waiter that receives its events."""

    turn_id: str
    tenant_id: str
    agent_id: str
    duplicate: bool
    waiter: TurnWaiter
    events: list[common_pb2.Event] = field(default_factory=list)


class TurnSubmitter:
    """Publishes TurnRequests (durable once acked) and streams their events from the hub."""

    def __init__(self, js: JetStreamContext, hub: EventHub, idempotency_kv: KeyValue | None = None) -> None:
        self.js = js
        self.hub = hub
        self.kv = idempotency_kv

    async def _first_submitted_at(self, turn_id: str) -> float | None:
        """When a keyed turn was first accepted (beyond JetStream's 120 s deduplication window)."""
        if self.kv is None:
            return None
        try:
            entry = await self.kv.get(f"idem.{turn_id}")
        except KeyNotFoundError:
            return None
        try:
            return float(json.loads(entry.value or b"{}")["at"])
        except (ValueError, KeyError, TypeError):
            return None

    async def submit(self, tenant_id: str, agent_id: str, message: str, *, role: str = "user",
                     max_steps: int = 0, idempotency_key: str | None = None,
                     tools: list[common_pb2.ToolSpec] | None = None) -> SubmittedTurn:
        turn_id = turn_id_for(tenant_id, agent_id, idempotency_key)
        request = common_pb2.TurnRequest(turn_id=turn_id, tenant_id=tenant_id, agent_id=agent_id,
                                         message=message, role=role or "user", created_at=now_iso(),
                                         max_steps=max_steps, tools=tools or [])
        waiter = self.hub.register(turn_id)  # before publishing: no event can be missed
        try:
            first_at = await self._first_submitted_at(turn_id) if idempotency_key else None
            duplicate = first_at is not None
            if not duplicate:
                with telemetry.turn_scope(tenant_id, agent_id, turn_id):
                    headers = telemetry.inject({"Nats-Msg-Id": turn_id})
                    ack = await self.js.publish(subjects.turns_subject(tenant_id, agent_id),
                                                request.SerializeToString(), headers=headers,
                                                stream=subjects.TURNS_STREAM, timeout=10.0)
                duplicate = bool(ack.duplicate)
                if idempotency_key and self.kv is not None and not duplicate:
                    await self.kv.put(f"idem.{turn_id}", json.dumps({"at": time.time()}).encode())
        except Exception as exc:
            self.hub.unregister(waiter)
            raise ApiError(503, f"the turn queue is unavailable: {exc.__class__.__name__}") from exc
        turn = SubmittedTurn(turn_id, tenant_id, agent_id, duplicate, waiter)
        if turn.duplicate:
            # The same turn was submitted before: its past events come from the stream, merged in
            # sequence order with those the hub delivers meanwhile.
            since = (datetime.fromtimestamp(first_at - 5.0, UTC) if first_at is not None
                     else recent_window_start(REPLAY_WINDOW_SECONDS))
            try:
                history = [e async for e in replay(self.js, tenant_id, agent_id, since=since, idle_timeout=5.0)
                           if e is not None and e.turn_id == turn_id]
            except Exception:
                self.hub.unregister(waiter)
                raise
            waiter.merge(history)
        return turn

    async def resume(self, tenant_id: str, agent_id: str, turn_id: str,
                     resolution: common_pb2.CallResolution) -> SubmittedTurn:
        """Publish the resolution of a paused turn's call (durable once acked; deduplicated by call and
        kind); the events of the turn from then on come to the returned turn's waiter."""
        request = common_pb2.TurnRequest(turn_id=turn_id, tenant_id=tenant_id, agent_id=agent_id,
                                         created_at=now_iso(), resolution=resolution)
        waiter = self.hub.register(turn_id)
        try:
            with telemetry.turn_scope(tenant_id, agent_id, turn_id):
                headers = telemetry.inject({"Nats-Msg-Id": f"{turn_id}:{resolution.kind}:{resolution.call_id}"})
                ack = await self.js.publish(subjects.resume_subject(tenant_id, agent_id), request.SerializeToString(),
                                            headers=headers, stream=subjects.TURNS_STREAM, timeout=10.0)
        except Exception as exc:
            self.hub.unregister(waiter)
            raise ApiError(503, f"the turn queue is unavailable: {exc.__class__.__name__}") from exc
        return SubmittedTurn(turn_id, tenant_id, agent_id, bool(ack.duplicate), waiter)

    def close(self, turn: SubmittedTurn) -> None:
        self.hub.unregister(turn.waiter)

    @overload
    def events(self, turn: SubmittedTurn, timeout: float | None,
               keepalive: None = None) -> AsyncGenerator[common_pb2.Event, None]: ...
    @overload
    def events(self, turn: SubmittedTurn, timeout: float | None,
               keepalive: float) -> AsyncGenerator[common_pb2.Event | None, None]: ...

    def events(self, turn: SubmittedTurn, timeout: float | None,
               keepalive: float | None = None) -> AsyncGenerator[common_pb2.Event | None, None]:
        """The turn's events in order of arrival (each also appended to `turn.events`), until its final
        event, its pause, or `timeout` seconds; with `keepalive`, None after each `keepalive` seconds
        without one."""
        return _follow(turn, timeout, keepalive)


async def _follow(turn: SubmittedTurn, timeout: float | None,
                  keepalive: float | None) -> AsyncGenerator[common_pb2.Event | None, None]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = keepalive
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wait = remaining if wait is None else min(wait, remaining)
        queue = turn.waiter.queue
        try:
            if queue.empty():
                async with asyncio.timeout(wait):  # no task per wait, as wait_for would make
                    event = await queue.get()
            else:
                event = queue.get_nowait()
        except TimeoutError:
            if keepalive is None or (deadline is not None and time.monotonic() >= deadline):
                return
            yield None
            continue
        turn.events.append(event)
        yield event
        if ends_wait(event):
            return
