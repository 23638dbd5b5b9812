"""The client side of a turn that pauses (docs/tools.md): which call to answer next, and how, for the
`on_tool_call` / `on_approval` handlers of `send_message`. Shared by `Mnemo` and `AsyncMnemo`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mnemo.client.models import Event

ToolHandler = Callable[[str, dict[str, Any]], Any]        # (name, arguments) -> result (or an awaitable)
ApprovalHandler = Callable[[str, dict[str, Any]], Any]    # -> bool, or (bool, reason) (or an awaitable)


@dataclass(frozen=True)
class Waiting:
    """A call the paused turn waits on: `kind` is "tool" (run it) or "approval" (decide)."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    kind: str


def waiting_calls(events: list[Event]) -> list[Waiting]:
    """The calls the turn waits on after `events` (the last turn_paused names them; the latest request
    of each says what it waits for)."""
    paused = next((e for e in reversed(events) if e.type == "turn_paused"), None)
    if paused is None:
        return []
    out = []
    for call_id in paused.call_ids or []:
        request = next((e for e in reversed(events) if e.call_id == call_id
                        and e.type in ("tool_call_requested", "approval_requested")), None)
        if request is not None:
            kind = "tool" if request.type == "tool_call_requested" else "approval"
            out.append(Waiting(call_id, request.name or "", _arguments(request.arguments), kind))
    return out


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def tool_answer(call: Waiting, outcome: Any, error: BaseException | None) -> dict[str, Any]:
    """The body of POST /tool-results for what the handler returned (or raised)."""
    if error is not None:
        return {"call_id": call.call_id, "error": f"{type(error).__name__}: {error}"}
    return {"call_id": call.call_id, "result": outcome if isinstance(outcome, (str, dict, list)) else
            json.dumps(outcome, default=str)}


def approval_answer(call: Waiting, decision: Any) -> dict[str, Any]:
    """The body of POST /approvals for a handler's decision: a bool, or (bool, reason)."""
    if isinstance(decision, tuple):
        approve, reason = bool(decision[0]), str(decision[1] if len(decision) > 1 else "")
    else:
        approve, reason = bool(decision), ""
    return {"call_id": call.call_id, "approve": approve, "reason": reason}
