"""Building a step's events and publishing them to the EVENTS stream (deduplicated by event id)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from nats.js import JetStreamContext

from mnemo.common import ids, subjects
from mnemo.v1 import common_pb2


class StepEvents:
    """Events of one step, with stable ids "<turn_id>:<step>:<n>"."""

    def __init__(self, turn_id: str, tenant_id: str, agent_id: str, step: int) -> None:
        self.turn_id = turn_id
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.step = step
        self.events: list[common_pb2.Event] = []

    def add(self, type_: str, **payload: object) -> common_pb2.Event:
        ev = common_pb2.Event(type=type_, turn_id=self.turn_id, agent_id=self.agent_id,
                              tenant_id=self.tenant_id, created_at=ids.now_iso(), step=self.step,
                              id=f"{self.turn_id}:{self.step}:{len(self.events)}", **payload)  # type: ignore[arg-type]
        self.events.append(ev)
        return ev


class EventPublisher:
    """Publishes events through JetStream with Nats-Msg-Id = event.id and trace headers.

    On a single JetStream server (`ack_each=False`) only a step's last event waits for its ack: the
    server stores one connection's messages in order, so that ack vouches for the ones before it. A
    replicated stream can change leader between two messages, so there every event is acknowledged.
    """

    def __init__(self, js: JetStreamContext, ack_each: bool = True) -> None:
        self.js = js
        self.ack_each = ack_each

    async def publish(self, events: Iterable[common_pb2.Event], trace_headers: Mapping[str, str]) -> None:
        pending = list(events)
        if not pending:
            return
        acks = []
        for i, ev in enumerate(pending):
            headers = {**trace_headers, "Nats-Msg-Id": ev.id}
            subject = subjects.events_subject(ev.tenant_id, ev.agent_id)
            if self.ack_each or i == len(pending) - 1:
                acks.append(self.js.publish(subject, ev.SerializeToString(), headers=headers))
            else:
                await self.js._nc.publish(subject, ev.SerializeToString(), headers=headers)  # noqa: SLF001
        # In order on the wire (one connection), acknowledged together.
        await asyncio.gather(*acks)
