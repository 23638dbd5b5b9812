"""Paused turns (docs/tools.md): a step that holds a client-side tool's call, or a call that needs
approval, commits the call with a pending record in the turn's progress (`PendingCall`, with its
deadline) and the turn pauses. A resolution (the tool's result or error, approve or deny, or the
timeout) arrives later as a TurnRequest of its own, planned by `mnemo.orchestrator.resolution`.
This module holds what both sides share: the names, deadlines, the timer messages."""

from __future__ import annotations

from datetime import UTC, timedelta

from mnemo.common import ids
from mnemo.orchestrator.events import StepEvents
from mnemo.v1 import common_pb2

PAUSED = "paused"          # what the driver reports for a turn that waits on its pending calls
TOOL_TIMEOUT = "tool_timeout"
DEFAULT_TIMEOUT_SECONDS = 600.0
RESOLUTIONS = {"client": ("result", "error", "timeout"), "approval": ("approve", "deny", "timeout")}


class TurnWaits(Exception):
    """The turn cannot run yet: hand its message back for `delay` seconds (None: the delivery policy's).

    A new turn of an agent whose turn is paused waits for the pause to end; a timeout's timer waits
    for its deadline."""

    def __init__(self, delay: float | None = None) -> None:
        super().__init__("the turn waits")
        self.delay = delay


def deadline_after(now: str, seconds: float) -> str:
    later = ids.parse_time(now) + timedelta(seconds=seconds)
    return later.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_until(deadline: str, now: str) -> float:
    try:
        return (ids.parse_time(deadline) - ids.parse_time(now)).total_seconds()
    except ValueError:
        return 0.0


def timeout_seconds(config: common_pb2.AgentConfig, default: float) -> float:
    return float(config.tool_timeout_seconds) if config.tool_timeout_seconds > 0 else default


def paused_events(events: StepEvents, pending: list[common_pb2.PendingCall]) -> None:
    events.add("turn_paused", turn_paused=common_pb2.TurnPaused(call_ids=[c.call_id for c in pending]))


def timer_request(turn: common_pb2.TurnRequest | common_pb2.TurnProgress, tenant_id: str, agent_id: str,
                  call: common_pb2.PendingCall) -> tuple[common_pb2.TurnRequest, str]:
    """The timer of a pending call: a TurnRequest resolving it as timed out (the consumer holds it back
    until the deadline), and its Nats-Msg-Id."""
    req = common_pb2.TurnRequest(turn_id=turn.turn_id, tenant_id=tenant_id, agent_id=agent_id,
                                 resolution=common_pb2.CallResolution(call_id=call.call_id, kind="timeout"))
    return req, f"{turn.turn_id}:timeout:{call.call_id}:{call.deadline}"
