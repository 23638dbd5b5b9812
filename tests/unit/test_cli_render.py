"""How the CLI shows events and remembers the last agent; expected errors are one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from mnemo.cli import state
from mnemo.cli.render import print_event, print_memory
from mnemo.client import CoreMemory, Event
from tests.helpers import ENV_BASE, free_port, venv_bin


def render(*events: Event, verbose: bool = False) -> str:
    console = Console(record=True, width=120, color_system=None)
    for e in events:
        print_event(console, e, verbose)
    return console.export_text()


def test_events_render_like_the_tutorial() -> None:
    out = render(
        Event(type="inner_thought", seq=1, text="User said hi. [I should] greet."),
        Event(type="function_call", seq=2, name="core_memory_append",
              arguments='{"label": "human", "content": "likes tea", "request_heartbeat": true}'),
        Event(type="function_return", seq=3, name="core_memory_append", status="ok", result="OK"),
        Event(type="function_call", seq=4, name="send_message", arguments='{"message": "hi"}'),
        Event(type="assistant_message", seq=5, text="Hi there!"),
        Event(type="system_alert", seq=6, text="Memory pressure: 72% of the window"),
        Event(type="turn_completed", seq=7, stop_reason="max_steps"),
        Event(type="turn_failed", seq=8, error="model unavailable"),
    )
    lines = out.splitlines()
    assert lines[0] == "💭 User said hi. [I should] greet."
    assert lines[1] == '⚡🧠 [function] core_memory_append(label="human", content="likes tea")'
    assert lines[2] == "⚡ [ok] core_memory_append → OK"
    assert "send_message" not in out  # shown as the reply itself
    assert "🤖 Hi there!" in lines
    assert any("Memory pressure" in line for line in lines)
    assert "(turn stopped: max_steps)" in lines
    assert "error: the turn failed: model unavailable" in lines
    assert "send_message" in render(Event(type="function_call", name="send_message", arguments="{}"), verbose=True)


def test_memory_view_shows_blocks_and_counts() -> None:
    console = Console(record=True, width=100, color_system=None)
    print_memory(console, CoreMemory.model_validate({
        "blocks": [{"label": "persona", "value": "I am Sam.", "limit": 2000},
                   {"label": "human", "value": "Name: Chad", "limit": 2000}],
        "counts": {"recall": 12, "archival": 3, "queue": 5}}))
    out = console.export_text()
    assert "persona (9/2000 chars)" in out and "I am Sam." in out and "Name: Chad" in out
    assert "recall memory: 12 messages · archival memory: 3 passages" in out


def test_last_agent_is_remembered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNEMO_HOME", str(tmp_path))
    assert state.last_agent() is None
    state.remember_agent("agent-1")
    state.save_state(other=1)
    assert state.last_agent() == "agent-1"
    assert (tmp_path / "cli.json").exists()
    (tmp_path / "cli.json").write_text("{broken")
    assert state.last_agent() is None


def test_expected_errors_are_one_clear_line(tmp_path: Path) -> None:
    env = {**ENV_BASE, "MNEMO_HOME": str(tmp_path), "MNEMO_HTTP_PORT": str(free_port()), "NO_COLOR": "1"}
    for argv in (["agents", "list"], ["run", "--yes"]):
        proc = subprocess.run([venv_bin("mnemo"), *argv], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stderr.startswith("error: ") and "mnemo up" in proc.stderr
