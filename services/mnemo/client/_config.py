"""Where the client finds the server and its key: arguments, then MNEMO_* variables, then $MNEMO_HOME."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BASE_URL = "http://127.0.0.1:8283"


def mnemo_home() -> Path:
    return Path(os.environ.get("MNEMO_HOME") or "~/.mnemo").expanduser()


def default_base_url() -> str:
    """MNEMO_BASE_URL, else the local gateway on MNEMO_HOST:MNEMO_HTTP_PORT (127.0.0.1:8283)."""
    explicit = os.environ.get("MNEMO_BASE_URL")
    if explicit:
        return explicit.rstrip("/")
    host = os.environ.get("MNEMO_HOST") or "127.0.0.1"
    port = os.environ.get("MNEMO_HTTP_PORT") or "8283"
    return f"http://{host}:{port}"


def default_api_key() -> str | None:
    """MNEMO_API_KEY, else the key `mnemo up` wrote to $MNEMO_HOME/api_key."""
    key = os.environ.get("MNEMO_API_KEY")
    if key:
        return key.strip()
    try:
        text = (mnemo_home() / "api_key").read_text().strip()
    except OSError:
        return None
    return text or None
