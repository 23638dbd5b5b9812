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
        pending = [_wire(ev, trace_headers) for ev in events]
        if not pending:
            return
        # In order on the wire (one connection) and in one socket write: a publish awaited here puts
        # its message in the client's buffer before this task yields, while one wrapped in a task
        # would run only after the client's flusher had written the messages before it.
        if self.ack_each:  # tasks started in order, each buffered before the flusher runs
            await asyncio.gather(*(self.js.publish(subject, data, headers=headers)
                                   for subject, data, headers in pending))
            return
        *first, (subject, data, headers) = pending
        for s, d, h in first:
            await self.js._nc.publish(s, d, headers=h)
        await self.js.publish(subject, data, headers=headers)


def _wire(ev: common_pb2.Event, trace_headers: Mapping[str, str]) -> tuple[str, bytes, dict[str, str]]:
    """Subject, payload and headers of an event's publish (deduplicated by its id)."""
    return (subjects.events_subject(ev.tenant_id, ev.agent_id), ev.SerializeToString(),
            {**trace_headers, "Nats-Msg-Id": ev.id})
