"""`mnemo up` as a subprocess on free ports and a private MNEMO_HOME, for end-to-end tests and benches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from tests.helpers import ENV_BASE, free_port, free_port_run, venv_bin

ORCHESTRATOR_PORTS = 8  # replicas a stack of the tests may run


def _span(name: str, port: int) -> range:
    """The ports a stack's `name` port stands for (the orchestrator's: one per replica)."""
    return range(port, port + (ORCHESTRATOR_PORTS if name == "orchestrator" else 1))


class Stack:
    """One `mnemo up` process tree. `start()` returns once /healthz answers and the key file exists."""

    def __init__(self, home: Path, llm_base_url: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.ports: dict[str, int] = {}
        for name in ("http", "grpc", "memory", "llm", "orchestrator", "nats"):
            # Orchestrator replicas 2..N take the ports after the first one: keep a run of them free.
            pick = (lambda: free_port_run(ORCHESTRATOR_PORTS)) if name == "orchestrator" else free_port
            port = pick()
            while not self.reserved_ports.isdisjoint(_span(name, port)):  # chosen ports are not bound yet
                port = pick()
            self.ports[name] = port
        env = dict(ENV_BASE)
        env.update({
            "MNEMO_HOME": str(home),
            "MNEMO_HTTP_PORT": str(self.ports["http"]),
            "MNEMO_GRPC_PORT": str(self.ports["grpc"]),
            "MNEMO_MEMORY_PORT": str(self.ports["memory"]),
            "MNEMO_LLM_PORT": str(self.ports["llm"]),
            "MNEMO_ORCHESTRATOR_PORT": str(self.ports["orchestrator"]),
            "MNEMO_NATS_PORT": str(self.ports["nats"]),
            "OTEL_TRACES_EXPORTER": "none",
            "NO_COLOR": "1",
            "COLUMNS": "160",
        })
        if llm_base_url:
            env["OPENAI_API_KEY"] = "test"
            env["OPENAI_BASE_URL"] = llm_base_url
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self.child_pids: list[int] = []

    @property
    def reserved_ports(self) -> set[int]:
        """Every port the stack takes when it starts (each orchestrator replica's included)."""
        return {p for name, port in self.ports.items() for p in _span(name, port)}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    @property
    def api_key(self) -> str:
        return (self.home / "api_key").read_text().strip()

    @property
    def output_path(self) -> Path:
        return self.home.parent / f"{self.home.name}-up.out"

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, timeout: float = 240.0) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self.proc = subprocess.Popen([venv_bin("mnemo"), "up"], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=open(self.output_path, "ab"), stderr=subprocess.STDOUT)
        deadline = began + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mnemo up exited with {self.proc.returncode}:\n{self.output()}")
            if self._healthy() and (self.home / "api_key").exists() and (self.home / "run" / "stack.json").exists():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mnemo up not healthy after {timeout}s:\n{self.output()}")
            time.sleep(0.1)  # polling a condition with a deadline, not synchronizing by sleep
        self.startup_seconds = time.monotonic() - began
        self.child_pids = [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.base_url + "/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stack_info(self) -> dict:
        return json.loads((self.home / "run" / "stack.json").read_text())

    def rss_bytes(self) -> int:
        """Resident memory of `mnemo up` and every process under it."""
        assert self.proc is not None
        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM `mnemo up` (as a user's Ctrl-C would) and wait; returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.wait()
                for pid in self.child_pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                raise RuntimeError(f"mnemo up did not stop within {timeout}s:\n{self.output()}") from exc
        code = self.proc.returncode
        self.proc = None
        return code

    def alive_children(self) -> list[int]:
        alive = []
        for pid in self.child_pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive
