"""Submitting turns to JetStream and collecting their events."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.js import JetStreamContext

from mnemo.common import subjects, telemetry
from mnemo.common.ids import new_id, now_iso
from mnemo.gateway.errors import ApiError
from mnemo.gateway.events import EventHub, TurnWaiter, is_final, recent_window_start, replay
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
    replay_task: asyncio.Task[None] | None = None
    events: list[common_pb2.Event] = field(default_factory=list)


class TurnRunner:
    """Publishes TurnRequests (durable once acked) and streams their events from the hub."""

    def __init__(self, js: JetStreamContext, hub: EventHub) -> None:
        self.js = js
        self.hub = hub

    async def submit(self, tenant_id: str, agent_id: str, message: str, *, role: str = "user",
                     max_steps: int = 0, idempotency_key: str | None = None) -> SubmittedTurn:
        turn_id = turn_id_for(tenant_id, agent_id, idempotency_key)
        request = common_pb2.TurnRequest(turn_id=turn_id, tenant_id=tenant_id, agent_id=agent_id,
                                         message=message, role=role or "user", created_at=now_iso(),
                                         max_steps=max_steps)
        waiter = self.hub.register(turn_id)  # before publishing: no event can be missed
        try:
            with telemetry.turn_scope(tenant_id, agent_id, turn_id):
                headers = telemetry.inject({"Nats-Msg-Id": turn_id})
                ack = await self.js.publish(subjects.turns_subject(tenant_id, agent_id),
                                            request.SerializeToString(), headers=headers,
                                            stream=subjects.TURNS_STREAM, timeout=10.0)
        except Exception as exc:
            self.hub.unregister(waiter)
            raise ApiError(503, f"the turn queue is unavailable: {exc.__class__.__name__}") from exc
        turn = SubmittedTurn(turn_id, tenant_id, agent_id, bool(ack.duplicate), waiter)
        if turn.duplicate:
            # The same turn was submitted before: its events may already be in the stream.
            turn.replay_task = asyncio.create_task(self._replay_into(turn))
        return turn

    async def _replay_into(self, turn: SubmittedTurn) -> None:
        async for event in replay(self.js, turn.tenant_id, turn.agent_id,
                                  since=recent_window_start(REPLAY_WINDOW_SECONDS), idle_timeout=5.0):
            if event is not None and event.turn_id == turn.turn_id:
                turn.waiter.put(event)

    def close(self, turn: SubmittedTurn) -> None:
        self.hub.unregister(turn.waiter)
        if turn.replay_task is not None and not turn.replay_task.done():
            turn.replay_task.cancel()

    async def events(self, turn: SubmittedTurn, timeout: float | None) -> AsyncIterator[common_pb2.Event]:
        """The turn's events in order of arrival, until its final event or `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                event = await asyncio.wait_for(turn.waiter.queue.get(), remaining)
            except asyncio.TimeoutError:
                return
            turn.events.append(event)
            yield event
            if is_final(event):
                return
