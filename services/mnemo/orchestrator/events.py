"""Building a step's events. Memory publishes them once the step is committed (CommitStep); the
orchestrator itself publishes only events of turns that commit nothing (turn_failed) and re-publishes
the last committed step's events of a redelivered turn (mnemo.common.events.EventPublisher)."""

from __future__ import annotations

from mnemo.common import ids
from mnemo.v1 import common_pb2


class StepEvents:
    """Events of one step, with stable ids "<turn_id>:<step>:<n>" (or "<key>:<n>": a step that resolves
    a paused call has a key of its own)."""

    def __init__(self, turn_id: str, tenant_id: str, agent_id: str, step: int, key: str = "") -> None:
        self.turn_id = turn_id
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.step = step
        self.key = key or f"{turn_id}:{step}"
        self.events: list[common_pb2.Event] = []

    def add(self, type_: str, **payload: object) -> common_pb2.Event:
        ev = common_pb2.Event(type=type_, turn_id=self.turn_id, agent_id=self.agent_id,
                              tenant_id=self.tenant_id, created_at=ids.now_iso(), step=self.step,
                              id=f"{self.key}:{len(self.events)}", **payload)  # type: ignore[arg-type]
        self.events.append(ev)
        return ev
