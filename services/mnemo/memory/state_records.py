"""How an agent's state is laid out in the agents bucket: whole records and step records.

A step only appends to the queue, and the queue is most of the state (tens to hundreds of KB in a
long conversation). So a step writes a *step record* (`AgentStore.put_step`): an AgentState whose
every field but `queue` is the agent's whole state, whose `queue` holds only the messages the step
appended, and whose `stored_base` is the revision of the record it extends. Every other write (an
edit, an eviction, an import, a restore) and every step that would make a chain longer than the
bucket keeps writes the whole state, as does a writer that does not hold the state it extends.

A reader rebuilds the state from the newest record back to a whole record, or to a revision whose
whole state it already holds, fetching each base by its revision. The bucket keeps `HISTORY`
records per key and a chain is at most half as long (`max_depth`), so a chain is there to read even
while a few more records are written; a reader that a burst of writes outran starts again from the
newest record. A bucket made by an earlier release keeps one record per key until it is raised
(`natsutil.ensure_kv`); with one it gets whole records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnemo.v1 import common_pb2

HISTORY = 16  # records kept per agent key (the bucket's history)

_QUEUE_NUMBER = common_pb2.AgentState.QUEUE_FIELD_NUMBER
_QUEUE_TAG = bytes([_QUEUE_NUMBER << 3 | 2])  # a length-delimited entry of the queue


def max_depth(history: int) -> int:
    """How many step records may follow a whole record in a bucket keeping `history` per key: half of
    it, so that a reader following a chain while new records are written finds it still there."""
    return max(0, min(history, HISTORY) // 2)


def _copy_field(target: common_pb2.AgentState, field: Any, value: Any) -> None:
    if field.is_repeated:
        getattr(target, field.name).extend(value)
    elif field.message_type is not None:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)


def rebuild(base: common_pb2.AgentState, steps: Sequence[common_pb2.AgentState]) -> common_pb2.AgentState:
    """The state after the step records `steps` (oldest first) on top of the whole state `base`:
    the newest record's fields, and the queue of `base` followed by each record's messages."""
    if not steps:
        return base
    state = common_pb2.AgentState()
    state.CopyFrom(steps[-1])  # a step record is small: its head and a step's messages
    del state.queue[:]
    state.queue.extend(base.queue)
    for record in steps:
        state.queue.extend(record.queue)
    state.stored_base = 0
    state.stored_depth = 0
    return state


def queue_entries(messages: Sequence[common_pb2.Message]) -> bytes:
    """`messages` as serialized entries of AgentState.queue: what a state's bytes hold them as."""
    return common_pb2.AgentState(queue=messages).SerializeToString()


def queue_span(state: common_pb2.AgentState, data: bytes) -> tuple[int, int] | None:
    """Where the queue's entries lie in `data`, the bytes of `state`: data[:start] + data[end:] is the
    state without its queue, data[start:end] its queue. `data` is laid out either as serialized (the
    fields before the queue, the queue, the fields after it) or as `AgentStore.put_step` writes it (the
    other fields, then the queue); None for anything else (checked, not assumed)."""
    before, after = common_pb2.AgentState(), common_pb2.AgentState()
    for field, value in state.ListFields():
        if field.name == "queue":
            continue
        _copy_field(before if field.number < _QUEUE_NUMBER else after, field, value)
    head, tail = before.SerializeToString(), after.SerializeToString()
    if data.startswith(head) and data.endswith(tail) and len(head) + len(tail) <= len(data):
        start, end = len(head), len(data) - len(tail)
    elif data.startswith(head + tail):
        start, end = len(head) + len(tail), len(data)
    else:
        return None
    if end > start and data[start:start + 1] != _QUEUE_TAG:
        return None
    return start, end
