"""How messages are packed for the model, MemGPT style: user text, function results and system
events travel as small JSON documents with a timestamp."""

from __future__ import annotations

import json
from datetime import UTC, datetime

HIDDEN = "[This is an automated system message hidden from the user]"


def friendly_time(iso: str = "") -> str:
    """A compact human timestamp (UTC, minute precision) for the model."""
    if iso:
        try:
            from mnemo.common.ids import parse_time
            dt = parse_time(iso)
        except ValueError:
            return iso
    else:
        dt = datetime.now(UTC)
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def _dump(obj: dict[str, object]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def user_message(text: str, created_at: str) -> str:
    return _dump({"type": "user_message", "message": text, "time": friendly_time(created_at)})


def function_result(ok: bool, message: str, created_at: str = "") -> str:
    return _dump({"status": "OK" if ok else "Failed", "message": message, "time": friendly_time(created_at)})


def heartbeat(reason: str, created_at: str = "") -> str:
    return _dump({"type": "heartbeat", "reason": f"{HIDDEN} {reason}", "time": friendly_time(created_at)})


def login(last_seen: str, created_at: str = "") -> str:
    return _dump({"type": "login",
                  "last_login": friendly_time(last_seen) if last_seen else "never",
                  "time": friendly_time(created_at)})


def system_alert(text: str, created_at: str = "") -> str:
    return _dump({"type": "system_alert", "message": f"{HIDDEN} {text}", "time": friendly_time(created_at)})


HEARTBEAT_REQUESTED = "Function called using request_heartbeat=true, returning control."
HEARTBEAT_AFTER_ERROR = "Function call failed, returning control."
MEMORY_PRESSURE = ("Memory pressure: the context is {pct}% full. Save anything important from the "
                   "conversation to core memory or archival memory now; older messages will soon be "
                   "summarised and removed from view (they stay searchable in recall memory).")
