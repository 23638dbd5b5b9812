"""The `mnemo up` supervisor with real child processes: health waits, failures, ordered clean stop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psutil
import pytest

from mnemo.cli.supervisor import ProcessSpec, StartupError, Supervisor, port_in_use, tcp_health
from tests.helpers import free_port

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
    never = ProcessSpec("llm-proxy", [sys.executable, "-c", "import time; time.sleep(60)"],
                        tmp_path / "llm.log", tcp_health("127.0.0.1", free_port()))
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


async def test_watch_notices_a_dead_process(tmp_path: Path) -> None:
    sup = Supervisor(env={"PATH": "/usr/bin:/bin"})
    spec = listener("memory", tmp_path)
    await sup.start_wave([spec], timeout=20)
    psutil.Process(sup.pids()["memory"]).kill()
    dead = await asyncio.wait_for(sup.watch(asyncio.Event()), 10)
    assert dead is not None and dead.spec.name == "memory"
    await sup.stop_all()
