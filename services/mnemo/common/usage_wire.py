"""The USAGE stream's message format, shared by its writer (the llm-proxy) and its readers (the
proxy's totals, the console's usage over time).

A message on `mnemo.usage.<tenant>.<agent>` is a JSON array of usage records of that tenant and agent,
oldest first: the proxy batches the records of a short window into one message. Messages written
before batching hold one record as a JSON object; readers accept both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


def encode(records: Sequence[dict[str, Any]]) -> bytes:
    """One message holding `records` (all of one tenant and agent)."""
    return orjson.dumps(list(records))


def decode(data: bytes) -> list[dict[str, Any]]:
    """The records of one message (an array, or a single object as written before batching); the
    entries that are not objects are left out. ValueError when `data` is not JSON."""
    value = orjson.loads(data)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    return []
