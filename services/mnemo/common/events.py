"""Publishing agent events to the EVENTS stream (deduplicated by event id, trace headers attached)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from nats.js import JetStreamContext

from mnemo.common import subjects
from mnemo.v1 import common_pb2


class EventPublisher:
    """Publishes events through JetStream with Nats-Msg-Id = event.id and trace headers.

    On a single JetStream server (`ack_each=False`) only the last event of a call waits for its ack:
    the server stores one connection's messages in order, so that ack vouches for the ones before it.
    A replicated stream can change leader between two messages, so there every event is acknowledged.
    """

    def __init__(self, js: JetStreamContext, ack_each: bool = True) -> None:
        self.js = js
        self.ack_each = ack_each

    @classmethod
    def for_replicas(cls, js: JetStreamContext, replicas: int) -> EventPublisher:
        """The ack policy for a stream of `replicas` (MNEMO_JETSTREAM_REPLICAS)."""
        return cls(js, ack_each=replicas > 1)

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
                await self.js._nc.publish(subject, ev.SerializeToString(), headers=headers)
        # In order on the wire (one connection), acknowledged together.
        await asyncio.gather(*acks)
