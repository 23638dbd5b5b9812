"""What the CLI remembers between runs ($MNEMO_HOME/cli.json): the last agent used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnemo.client._config import mnemo_home


def state_path() -> Path:
    return mnemo_home() / "cli.json"


def load_state() -> dict[str, Any]:
    try:
        data = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(**changes: Any) -> None:
    data = {**load_state(), **changes}
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def last_agent() -> str | None:
    value = load_state().get("last_agent")
    return value if isinstance(value, str) and value else None


def remember_agent(agent_id: str | None) -> None:
    save_state(last_agent=agent_id)
