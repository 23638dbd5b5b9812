"""A self-healing `mnemo up`: a killed service comes back while the rest keeps serving, orchestrator
replicas, `mnemo status`, and a crash loop stopping the stack with one clear message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.stack import Stack
from tests.helpers import eventually, free_port, venv_bin
from tests.scripted_llm import ScriptedLLM


def status(stack: Stack) -> tuple[int, dict[str, list[str]], str]:
    """`mnemo status`: its exit code, its rows by process name (pid, uptime, restarts, alive), its output."""
    result = subprocess.run([venv_bin("mnemo"), "status"], env=stack.env, capture_output=True, text=True,
                            timeout=30)
    rows = {}
    for line in result.stdout.splitlines():
        cells = line.split()
        if len(cells) == 5 and cells[1].isdigit():
            rows[cells[0]] = cells[1:]
    return result.returncode, rows, result.stdout + result.stderr


def turn(stack: Stack, text: str) -> str:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    agent = httpx.post(f"{stack.base_url}/v1/agents", json={"name": "restarts"}, headers=headers, timeout=30)
    assert agent.status_code in (200, 201), agent.text
    resp = httpx.post(f"{stack.base_url}/v1/agents/{agent.json()['id']}/messages", json={"message": text},
                      headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    return next(e["text"] for e in resp.json()["events"] if e["type"] == "assistant_message")


def start_up(stack: Stack, *args: str, timeout: float = 60.0) -> Stack:
    """`mnemo up <args>` for `stack`, returned once it is healthy and has written its stack file."""
    stack.home.mkdir(parents=True, exist_ok=True)
    stack.proc = subprocess.Popen([venv_bin("mnemo"), "up", *args], env=stack.env, stdin=subprocess.DEVNULL,
                                  stdout=open(stack.output_path, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not (stack._healthy() and (stack.home / "run" / "stack.json").exists()):
        assert stack.proc.poll() is None, stack.output()
        assert time.monotonic() < deadline, stack.output()
        time.sleep(0.05)  # polling a condition with a deadline
    stack.child_pids = [c.pid for c in psutil.Process(stack.proc.pid).children(recursive=True)]
    return stack


def port_pair() -> int:
    """A port p with p + 1 free too (orchestrator replicas 1 and 2)."""
    while True:
        port = free_port()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port + 1)) != 0 and port + 1 <= 65535:
                return port


LAYOUTS = {  # layout -> (the processes `mnemo status` lists, the one killed, its module)
    "split": ({"nats", "memory", "llm-proxy", "orchestrator", "gateway"}, "llm-proxy", "mnemo.llm_proxy"),
    "combined": ({"nats", "services"}, "services", "mnemo.cli.combined"),
    "core": ({"nats", "services", "gateway"}, "gateway", "mnemo.gateway"),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
async def test_a_killed_service_comes_back_and_turns_still_work(tmp_path: Path, scripted_llm_server: ScriptedLLM,
                                                                scripted_llm: ScriptedLLM, layout: str) -> None:
    processes, victim, module = LAYOUTS[layout]
    stack = Stack(tmp_path / "home", llm_base_url=scripted_llm_server.base_url,
                  extra_env={"MNEMO_LAYOUT": layout}).start()
    try:
        code, rows, out = status(stack)
        assert code == 0, out
        assert set(rows) == processes, out
        assert all(r[2] == "0" and r[3] == "yes" for r in rows.values()), out
        # The embedded nats-server runs with one Go scheduler thread (cli/up.py nats_env).
        assert psutil.Process(int(rows["nats"][0])).environ().get("GOMAXPROCS") == "1"
        old = int(rows[victim][0])
        os.kill(old, signal.SIGKILL)

        def back() -> bool:
            return f"{victim} is healthy again" in stack.output()

        await eventually(back, timeout=30, interval=0.1, message=f"{victim} restarted and healthy")
        out = stack.output()
        assert f"{victim} (pid {old}) exited unexpectedly (signal SIGKILL); restarting in" in out
        assert "Last lines of" in out and f"{victim}.log" in out
        code, rows, text = status(stack)
        assert code == 0, text
        pid, _, restarts, alive = rows[victim]
        assert int(pid) != old and restarts == "1" and alive == "yes", text
        assert psutil.Process(int(pid)).cmdline()[-1] == module
        assert all(r[2] == "0" for name, r in rows.items() if name != victim), text
        assert stack.stack_info()["processes"][victim] == int(pid)
        # The restarted process serves: a whole turn goes through it to the model and back.
        assert turn(stack, "after the restart") == "You said: after the restart"
    finally:
        code = stack.stop()
    assert code == 0, stack.output()
    assert "Mnemo stopped." in stack.output()
    code, _, out = status(stack)
    assert code == 1 and "not running" in out


@pytest.mark.parametrize("layout", ["auto", "combined"])
async def test_two_orchestrator_replicas(tmp_path: Path, scripted_llm_server: ScriptedLLM,
                                         scripted_llm: ScriptedLLM, layout: str) -> None:
    stack = Stack(tmp_path / "home", llm_base_url=scripted_llm_server.base_url)
    stack.ports["orchestrator"] = port_pair()
    stack.env["MNEMO_ORCHESTRATOR_PORT"] = str(stack.ports["orchestrator"])
    start_up(stack, "--orchestrators", "2", *(["--layout", layout] if layout != "auto" else []))
    try:
        code, rows, out = status(stack)
        assert code == 0, out
        if layout == "auto":  # the default with more than one replica: a process per service
            assert set(rows) == {"nats", "gateway", "memory", "llm-proxy", "orchestrator-1", "orchestrator-2"}, out
        else:  # gateway, memory and llm-proxy in one process, each replica in its own
            assert set(rows) == {"nats", "services", "orchestrator-1", "orchestrator-2"}, out
            assert psutil.Process(int(rows["services"][0])).cmdline()[-2:] == ["mnemo.cli.combined",
                                                                               "--no-orchestrator"]
        pids = [int(rows[f"orchestrator-{i}"][0]) for i in (1, 2)]
        assert pids[0] != pids[1]
        for pid in pids:
            assert psutil.Process(pid).cmdline()[-1] == "mnemo.orchestrator"
        health_ports = {c.laddr.port for pid in pids for c in psutil.Process(pid).net_connections()
                        if c.status == psutil.CONN_LISTEN}
        assert {stack.ports["orchestrator"], stack.ports["orchestrator"] + 1} <= health_ports
        assert turn(stack, "two of us") == "You said: two of us"
    finally:
        code = stack.stop()
    assert code == 0, stack.output()
    assert "stopping orchestrator-1" in stack.output() and "stopping orchestrator-2" in stack.output()
    assert stack.alive_children() == []


def test_a_service_that_keeps_failing_stops_the_stack(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "home", extra_env={"MNEMO_LAYOUT": "split"}).start()
    try:
        info = stack.stack_info()
        os.kill(info["processes"]["llm-proxy"], signal.SIGKILL)
        # Take its port the moment it is free: every restart is refused until the limit.
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                squatter.bind(("127.0.0.1", stack.ports["llm"]))
                break
            except OSError:
                assert time.monotonic() < deadline, "the killed llm-proxy never freed its port"
        squatter.listen()
        try:
            assert stack.proc is not None
            code = stack.proc.wait(timeout=30)
        finally:
            squatter.close()
    finally:
        if stack.proc is not None and stack.proc.poll() is None:
            stack.stop()
    out = stack.output()
    assert code == 1, out
    assert "error: llm-proxy keeps crashing: 5 failures within 60s (last: cannot start: port" in out, out
    assert out.count("warning: llm-proxy did not restart: cannot start: port") == 3, out
    assert "Mnemo stopped." not in out
    assert stack.alive_children() == []
    assert not (stack.home / "run" / "stack.json").exists()
