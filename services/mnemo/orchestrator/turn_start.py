"""How a delivered turn starts (docs/architecture.md), without I/O: whether it already ran, where a
redelivered one resumes, and the messages that open each of its steps (the user's message, a login
event after a long absence, a heartbeat)."""

from __future__ import annotations

from dataclasses import dataclass

from mnemo.common import ids
from mnemo.orchestrator import packing
from mnemo.v1 import common_pb2


@dataclass(frozen=True, slots=True)
class TurnStart:
    """How a delivered turn starts: `progress` None means it already ran; `republish` asks to publish
    the last committed step's events again (a redelivered turn)."""

    progress: common_pb2.TurnProgress | None
    republish: bool = False


def start_turn(turn: common_pb2.TurnRequest, seq: int, state: common_pb2.AgentState) -> TurnStart:
    """Resume the agent's current turn, skip one that already ran, or start a new one."""
    if state.turn.turn_id == turn.turn_id:
        # A redelivered turn: its last committed step's events went out with the commit unless
        # memory stopped right after the write; publishing them again is deduplicated by id.
        if state.turn.completed:
            return TurnStart(None, republish=True)
        progress = common_pb2.TurnProgress()
        progress.CopyFrom(state.turn)
        return TurnStart(progress, republish=True)
    if seq and state.turn.turn_seq > seq:
        return TurnStart(None)  # a later turn of this agent already ran, so this one did too
    return TurnStart(common_pb2.TurnProgress(turn_id=turn.turn_id, turn_seq=seq, turn_tools=turn.tools,
                                             max_steps=turn.max_steps))


def _seconds_between(earlier: str, later: str) -> float:
    try:
        return (ids.parse_time(later) - ids.parse_time(earlier)).total_seconds()
    except ValueError:
        return 0.0


def _valid_time(value: str) -> str:
    try:
        return value if value and ids.parse_time(value) else ""
    except ValueError:
        return ""


def step_inputs(turn: common_pb2.TurnRequest, state: common_pb2.AgentState, step: int, now: str,
                session_gap: float) -> list[common_pb2.Message]:
    """Messages that start a step: the user's message (after a login event when the user was away
    for `session_gap` seconds), or a heartbeat."""
    def system(text: str) -> common_pb2.Message:
        return common_pb2.Message(role="system", text=text, turn_id=turn.turn_id, step=step, created_at=now)

    if step == 1:
        out = []
        last = state.last_user_message_at
        if last and _seconds_between(last, now) >= session_gap:
            out.append(system(packing.login(last, now)))
        if turn.role == "system":
            out.append(system(packing.system_alert(turn.message, now)))
        else:
            out.append(common_pb2.Message(role="user", text=turn.message, turn_id=turn.turn_id, step=step,
                                          created_at=_valid_time(turn.created_at) or now))
        return out
    last_msg = state.queue[-1] if state.queue else None
    if last_msg is not None and last_msg.role == "system":
        return []  # the previous step ended with a system event: it is the prompt
    failed = last_msg is not None and last_msg.role == "tool" and '"status": "Failed"' in last_msg.text
    reason = packing.HEARTBEAT_AFTER_ERROR if failed else packing.HEARTBEAT_REQUESTED
    return [system(packing.heartbeat(reason, now))]
