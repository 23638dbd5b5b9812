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
    """Publishes events through JetStream with Nats-Msg-Id = event.id and trace headers."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def publish(self, events: Iterable[common_pb2.Event], trace_headers: Mapping[str, str]) -> None:
        acks = []
        for ev in events:
            headers = {**trace_headers, "Nats-Msg-Id": ev.id}
            acks.append(self.js.publish(subjects.events_subject(ev.tenant_id, ev.agent_id),
                                        ev.SerializeToString(), headers=headers))
        # In order on the wire (one connection), acknowledged together.
        await asyncio.gather(*acks)
