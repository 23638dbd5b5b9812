"""`mnemo up` when something is wrong: a clear error, the failing service's log, nothing left running."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.e2e.stack import Stack
from tests.helpers import venv_bin


def _run_up(stack: Stack, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run `mnemo up` to its end, recording every process it started along the way."""
    proc = subprocess.Popen([venv_bin("mnemo"), "up"], env=stack.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: set[int] = set()
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            seen.update(c.pid for c in parent.children(recursive=True))
        except psutil.NoSuchProcess:
            break
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    out, _ = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), sorted(seen)


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_a_service_that_cannot_start_shows_its_log_and_nothing_stays(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "home")
    # Bound but not listening: the pre-start port check passes, the memory service's bind fails.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", stack.ports["memory"]))
    try:
        result, seen = _run_up(stack)
    finally:
        blocker.close()
    assert result.returncode == 1, result.stdout
    # The combined layout: the process of the services exits, its log names the one that failed.
    assert "error: services exited with code 1 during startup" in result.stdout, result.stdout
    assert "last lines of" in result.stdout and "services.log" in result.stdout
    assert "memory failed to start" in result.stdout and "Event loop is closed" not in result.stdout
    assert "Traceback" not in result.stdout.split("last lines of")[0]
    assert seen, "nats and the services should have been started"
    assert _alive(seen) == []


def test_a_port_in_use_is_refused_before_starting(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "home")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", stack.ports["http"]))
        busy.listen()
        result, seen = _run_up(stack)
    assert result.returncode == 1
    assert f"port {stack.ports['http']} is already in use" in result.stdout
    assert _alive(seen) == []


def test_bad_settings_are_one_clear_line(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "home", extra_env={"MNEMO_HTTP_PORT": "not-a-port"})
    result = subprocess.run([venv_bin("mnemo"), "up"], env=stack.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "MNEMO_HTTP_PORT" in result.stderr


@pytest.mark.parametrize(("layout", "names"), [
    ("combined", ["services", "nats"]),
    ("split", ["gateway", "orchestrator", "llm-proxy", "memory", "nats"])])
def test_ctrl_c_in_a_terminal_stops_everything_in_order(tmp_path: Path, layout: str, names: list[str]) -> None:
    import pexpect

    stack = Stack(tmp_path / "home", extra_env={"MNEMO_LAYOUT": layout})
    child = pexpect.spawn(venv_bin("mnemo"), ["up"], env={**stack.env, "TERM": "dumb"}, encoding="utf-8",
                          timeout=180, dimensions=(40, 200))
    child.expect("Mnemo is up")
    child.expect("Press Ctrl-C to stop")
    pids = [c.pid for c in psutil.Process(child.pid).children(recursive=True)]
    assert len(pids) >= len(names)
    child.sendintr()  # the terminal's Ctrl-C goes to the foreground process group
    child.expect(pexpect.EOF)
    child.close()
    out = child.before
    assert all(f"stopping {n}" in out for n in names), out
    positions = [out.index(f"stopping {n}") for n in names]
    assert positions == sorted(positions), out  # gateway first, NATS last
    assert "Mnemo stopped." in out
    assert child.exitstatus == 0
    assert _alive(pids) == []
