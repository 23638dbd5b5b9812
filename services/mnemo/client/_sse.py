"""Server-sent events → Event models (httpx-sse parses the wire format)."""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import ServerSentEvent

from mnemo.client.models import Event


def event_from_sse(sse: ServerSentEvent) -> Event | None:
    """The agent event of one SSE message; None for keep-alives and non-JSON data."""
    if not sse.data:
        return None
    try:
        data: Any = json.loads(sse.data)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if "type" not in data and sse.event and sse.event != "message":
        data["type"] = sse.event
    if not data.get("seq") and sse.id:
        try:
            data["seq"] = int(sse.id)
        except ValueError:
            pass
    if "type" not in data:
        return None
    return Event.model_validate(data)


def events_from_json(data: Any) -> list[Event]:
    """Events from a JSON body: a list, or an object with `events`."""
    items = data.get("events", []) if isinstance(data, dict) else data
    return [Event.model_validate(e) for e in items or []]
