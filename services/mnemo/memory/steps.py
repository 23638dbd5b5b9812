"""Applying one CommitStep to an agent state (pure logic; the caller does the CAS write)."""

from __future__ import annotations

import json

from mnemo.common import ids
from mnemo.common.errors import InvalidArgument
from mnemo.memory import blocks as core
from mnemo.v1 import common_pb2, memory_pb2

ROLES = ("system", "user", "assistant", "tool")


def fill_message(msg: common_pb2.Message, now: str) -> None:
    """Assign an id and a timestamp where missing; reject unknown roles."""
    if msg.role not in ROLES:
        raise InvalidArgument(f"invalid message role {msg.role!r}: one of {', '.join(ROLES)}")
    if not msg.id:
        msg.id = ids.new_id("msg")
    if not msg.created_at:
        msg.created_at = now
    else:
        try:
            ids.parse_time(msg.created_at)
        except ValueError:
            raise InvalidArgument(f"invalid created_at {msg.created_at!r}: RFC 3339 expected") from None


def close_open_calls(state: common_pb2.AgentState, reason: str) -> list[common_pb2.Message]:
    """Append a failed return for every call in the queue that has none (an import or a restore of a
    paused turn drops the pause): no history holds a call without its return. The new messages."""
    answered = {m.tool_call_id for m in state.queue if m.role == "tool"}
    now = ids.now_iso()
    added = []
    for m in list(state.queue):
        for call in m.tool_calls if m.role == "assistant" else ():
            if call.id not in answered:
                text = json.dumps({"status": "Failed", "message": reason}, ensure_ascii=False)
                msg = common_pb2.Message(role="tool", text=text, tool_call_id=call.id, name=call.name,
                                         turn_id=m.turn_id, step=m.step, created_at=now)
                fill_message(msg, now)
                added.append(msg)
                answered.add(call.id)
    state.queue.extend(added)
    return added


def apply_step(state: common_pb2.AgentState, req: memory_pb2.CommitStepRequest) -> list[common_pb2.Message]:
    """Apply the step to `state` in place; return the committed messages (ids and times filled)."""
    now = ids.now_iso()
    messages: list[common_pb2.Message] = []
    for m in req.messages:
        msg = common_pb2.Message()
        msg.CopyFrom(m)
        fill_message(msg, now)
        messages.append(msg)

    for b in req.blocks:
        current = core.find_block(state, b.label)
        if current is not None and current.shared_id:
            raise InvalidArgument(f"block {b.label!r} is shared (block {current.shared_id}): its edits go to the "
                                  "block itself (UpdateSharedBlock), not into a step")
        core.set_block(state, b)
    if req.blocks:
        state.last_memory_edit_at = now
    if req.summary_changed:
        state.summary = req.summary

    if req.evict_message_ids:
        evict = set(req.evict_message_ids)
        kept = [m for m in state.queue if m.id not in evict]
        state.evicted_total += len(state.queue) - len(kept)
        del state.queue[:]
        state.queue.extend(kept)
    state.queue.extend(messages)

    if req.HasField("turn"):
        finished = req.turn.completed and not (state.turn.completed and state.turn.turn_id == req.turn.turn_id)
        state.turn.CopyFrom(req.turn)
        if finished:  # counted towards the next memory consolidation
            state.consolidation.turns_since += 1
            state.consolidation.last_turn_at = now
    if req.HasField("consolidation"):
        state.consolidation.CopyFrom(req.consolidation)
    state.memory_warning_sent = req.memory_warning_sent
    del state.pending_events[:]
    state.pending_events.extend(req.events)
    state.recall_count += len(messages)
    state.archival_count = max(0, state.archival_count + req.archival_delta)
    users = [m for m in messages if m.role == "user"]
    if users:
        state.last_user_message_at = users[-1].created_at
    state.last_step_id = req.step_id
    return messages
