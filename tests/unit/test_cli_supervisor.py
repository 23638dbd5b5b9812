"""The `mnemo up` supervisor with real child processes: health waits, failures, restarts, crash loops,
ordered clean stop."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import psutil
import pytest

from mnemo.cli.health import tcp_health
from mnemo.cli.restarts import RestartDecision, RestartPolicy, RestartTracker
from mnemo.cli.supervisor import (
    CrashLoopError,
    ProcessSpec,
    RestartEvents,
    RunningProcess,
    StartupError,
    Supervisor,
    port_in_use,
)
from mnemo.common.retry import Backoff
from tests.helpers import eventually, free_port, refused_port

LISTENER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("listening", flush=True)
while True:
    time.sleep(1)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(1)
"""


def listener(name: str, tmp: Path) -> ProcessSpec:
    port = free_port()
    return ProcessSpec(name, [sys.executable, "-c", LISTENER, str(port)], tmp / f"{name}.log",
                       tcp_health("127.0.0.1", port), ports=[port])


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_waves_start_healthy_and_stop_in_reverse_order(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, grace=5)
    await sup.start_wave([listener("nats", tmp_path)], timeout=20)
    await sup.start_wave([listener("memory", tmp_path), listener("gateway", tmp_path)], timeout=20)
    pids = sup.pids()
    assert set(pids) == {"nats", "memory", "gateway"}
    assert sup.exited() is None
    order: list[str] = []
    await sup.stop_all(on_stop=order.append)
    assert order == ["gateway", "memory", "nats"]
    assert all(gone(pid) for pid in pids.values())
    assert "listening" in (tmp_path / "gateway.log").read_text()


async def test_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"})
    bad = ProcessSpec("memory", [sys.executable, "-c", "import sys; print('bad config: MNEMO_X'); sys.exit(3)"],
                      tmp_path / "memory.log", tcp_health("127.0.0.1", free_port()))
    with pytest.raises(StartupError) as info:
        await sup.start_wave([bad], timeout=20)
    assert "exited with code 3" in str(info.value)
    assert "bad config: MNEMO_X" in info.value.log_tail
    await sup.stop_all()


async def test_unhealthy_times_out_and_busy_port_is_refused(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"})
    with refused_port() as nobody:
        never = ProcessSpec("llm-proxy", [sys.executable, "-c", "import time; time.sleep(60)"],
                            tmp_path / "llm.log", tcp_health("127.0.0.1", nobody))
        with pytest.raises(StartupError, match="not healthy after"):
            await sup.start_wave([never], timeout=0.5)
    pid = sup.pids()["llm-proxy"]
    await sup.stop_all()
    assert gone(pid)

    spec = listener("nats", tmp_path)
    await sup.start_wave([spec], timeout=20)
    assert port_in_use(spec.ports[0])
    twin = ProcessSpec("nats2", spec.argv, tmp_path / "nats2.log", spec.health, ports=spec.ports)
    with pytest.raises(StartupError, match="already in use"):
        sup.spawn(twin)
    await sup.stop_all()


async def test_sigterm_ignored_means_sigkill_after_grace(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, grace=0.5)
    log = tmp_path / "stubborn.log"
    spec = ProcessSpec("orchestrator", [sys.executable, "-c", STUBBORN], log,
                       health=lambda: asyncio.sleep(0, "ignoring SIGTERM" in log.read_text()))
    await sup.start_wave([spec], timeout=20)
    pid = sup.pids()["orchestrator"]
    await sup.stop_all()
    assert gone(pid)


FAST = RestartPolicy(backoff=Backoff(base=0.05, cap=0.2, jitter=True), max_exits=5, window=60.0)


class Recorder(RestartEvents):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []   # (event, process, detail)

    def exited(self, running: RunningProcess, status: str, decision: RestartDecision, log_tail: str) -> None:
        self.seen.append(("exited", running.spec.name, status))
        self.log_tail = log_tail

    def restart_failed(self, running: RunningProcess, reason: str, decision: RestartDecision) -> None:
        self.seen.append(("restart_failed", running.spec.name, reason))

    def restarted(self, running: RunningProcess) -> None:
        self.seen.append(("restarted", running.spec.name, str(running.pid)))

    def healthy(self, running: RunningProcess, seconds: float) -> None:
        self.seen.append(("healthy", running.spec.name, ""))


async def test_a_killed_process_is_restarted_while_the_others_keep_running(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, watch_interval=0.05)
    await sup.start_wave([listener("nats", tmp_path), listener("memory", tmp_path)], timeout=20)
    before = sup.pids()
    events, stop = Recorder(), asyncio.Event()
    task = asyncio.create_task(sup.supervise(stop, RestartTracker(FAST), events))
    try:
        psutil.Process(before["memory"]).kill()
        await eventually(lambda: ("healthy", "memory", "") in events.seen, timeout=20, message="memory back")
        after = sup.pids()
        assert after["memory"] != before["memory"] and after["nats"] == before["nats"]
        assert [r.restarts for r in sup.running] == [0, 1]
        assert events.seen[0] == ("exited", "memory", "signal SIGKILL")
        assert "listening" in events.log_tail
        assert events.seen[1] == ("restarted", "memory", str(after["memory"]))
        assert "memory exited (signal SIGKILL); restarting in" in (tmp_path / "memory.log").read_text()
        assert port_in_use(sup.running[1].spec.ports[0])
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await sup.stop_all()
    assert all(gone(pid) for pid in {*before.values(), *after.values()})


async def test_an_exit_is_heard_without_polling(tmp_path: Path) -> None:
    """The supervisor sleeps until a child exits (a pidfd per child): with a polling interval of an
    hour, a killed process is still restarted at once, and its replacement is watched too."""
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, watch_interval=3600)
    await sup.start_wave([listener("memory", tmp_path)], timeout=20)
    first = sup.pids()["memory"]
    events, stop = Recorder(), asyncio.Event()
    task = asyncio.create_task(sup.supervise(stop, RestartTracker(FAST), events))
    try:
        psutil.Process(first).kill()
        await eventually(lambda: ("healthy", "memory", "") in events.seen, timeout=20, message="memory back")
        second = sup.pids()["memory"]
        psutil.Process(second).kill()
        await eventually(lambda: sup.pids()["memory"] not in (first, second), timeout=20,
                         message="the replacement's exit heard too")
        assert [e for e, _, _ in events.seen].count("exited") == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await sup.stop_all()


async def test_a_process_that_keeps_dying_is_a_crash_loop(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, watch_interval=0.02)
    log = tmp_path / "llm.log"
    # Healthy at first (start-up passes), then every run of it exits at once with code 7.
    marker = tmp_path / "started-once"
    script = (f"import os, sys, time\nif os.path.exists({str(marker)!r}): print('boom', flush=True); sys.exit(7)\n"
              f"open({str(marker)!r}, 'w').close()\nwhile True: time.sleep(1)")
    spec = ProcessSpec("llm-proxy", [sys.executable, "-c", script], log,
                       health=lambda: asyncio.sleep(0, marker.exists()))
    await sup.start_wave([spec], timeout=20)
    psutil.Process(sup.pids()["llm-proxy"]).kill()
    events = Recorder()
    with pytest.raises(CrashLoopError) as info:
        await asyncio.wait_for(sup.supervise(asyncio.Event(), RestartTracker(FAST), events), 20)
    assert str(info.value) == "llm-proxy keeps crashing: 5 failures within 60s (last: code 7); stopping Mnemo"
    assert "llm-proxy keeps crashing" in log.read_text().splitlines()[-1]
    assert "boom" in info.value.log_tail
    assert [e for e, _, _ in events.seen].count("exited") == 4
    assert events.seen[0] == ("exited", "llm-proxy", "signal SIGKILL")
    assert sup.running[0].restarts == 4
    await sup.stop_all()


async def test_a_restart_refused_by_a_taken_port_counts_as_a_failure(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"}, watch_interval=0.02)
    spec = listener("memory", tmp_path)
    await sup.start_wave([spec], timeout=20)
    pid = sup.pids()["memory"]
    psutil.Process(pid).kill()
    await eventually(lambda: gone(pid) and not port_in_use(spec.ports[0]), timeout=10, message="port freed")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", spec.ports[0]))
        squatter.listen()
        events = Recorder()
        with pytest.raises(CrashLoopError, match="memory keeps crashing: 5 failures") as info:
            await asyncio.wait_for(sup.supervise(asyncio.Event(), RestartTracker(FAST), events), 20)
    assert "already in use" in info.value.status
    assert [e for e, _, _ in events.seen] == ["exited"] + ["restart_failed"] * 3
    assert (tmp_path / "memory.log").read_text().count("memory did not restart (cannot start: port") == 3
    await sup.stop_all()
