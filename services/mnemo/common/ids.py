"""Identifiers and timestamps."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

# NATS subject tokens and KV keys: tenant and agent ids must fit in one token.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_id(prefix: str) -> str:
    """A new random id such as `agent-3f2a...` (safe as a NATS subject token)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def is_token(value: str) -> bool:
    """True when `value` can be used as one NATS subject token / KV key part."""
    return bool(_TOKEN_RE.fullmatch(value))  # fullmatch: "$" would accept a trailing newline


def now_iso() -> str:
    """The current time, RFC 3339 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse RFC 3339 or a plain date (YYYY-MM-DD) into an aware UTC datetime."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)
