"""EventPublisher: a step's events reach the EVENTS stream in order, deduplicated by id, and leave
the client in one socket write (each extra write wakes nats-server and the gateway once more)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mnemo.common import subjects
from mnemo.common.events import EventPublisher
from mnemo.v1 import common_pb2


def _events(n: int) -> list[common_pb2.Event]:
    tenant, agent, turn = f"t{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    return [common_pb2.Event(id=f"{turn}:1:{i}", type="assistant_message", tenant_id=tenant, agent_id=agent,
                             turn_id=turn) for i in range(n)]


class WriteCounter:
    """Counts the socket writes of a connected nats-py client (its transport, left working)."""

    def __init__(self, nc: Any) -> None:
        self.writes = 0
        transport = nc._transport
        for name in ("write", "writelines"):
            original = getattr(transport, name)

            def counted(data: Any, _original: Any = original) -> Any:
                self.writes += 1
                return _original(data)
            setattr(transport, name, counted)


async def _stored(js: Any, events: list[common_pb2.Event]) -> list[str]:
    subject = subjects.events_subject(events[0].tenant_id, events[0].agent_id)
    sub = await js.subscribe(subject, ordered_consumer=True)
    ids = []
    try:
        while True:
            msg = await sub.next_msg(timeout=0.5)
            ids.append(common_pb2.Event.FromString(msg.data).id)
    except TimeoutError:
        return ids
    finally:
        await sub.unsubscribe()


@pytest.mark.parametrize("ack_each", [False, True], ids=["single-server", "replicated"])
async def test_a_steps_events_are_stored_in_order_once_and_leave_in_one_write(nc: Any, ack_each: bool) -> None:
    js = nc.jetstream()
    publisher = EventPublisher(js, ack_each=ack_each)
    events = _events(3)
    await nc.flush()
    counter = WriteCounter(nc)
    await publisher.publish(events, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    assert counter.writes == 1
    await publisher.publish(events, {})  # a retried step: the stream drops the repeats by id
    assert await _stored(js, events) == [e.id for e in events]
