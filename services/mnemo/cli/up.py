"""`mnemo up`: the whole stack on one machine (NATS + memory, llm-proxy, orchestrator, gateway)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table

from mnemo.cli.health import all_healthy, grpc_health, http_health, tcp_health
from mnemo.cli.restarts import RestartDecision, RestartPolicy, RestartTracker
from mnemo.cli.supervisor import (
    CrashLoopError,
    ProcessSpec,
    RestartEvents,
    RunningProcess,
    StartupError,
    Supervisor,
    nats_server_binary,
)
from mnemo.common.config import Settings

# Started together within a wave; waves in order. Stopped in reverse (gateway first, NATS last).
SERVICE_WAVES: list[list[str]] = [["memory", "llm_proxy"], ["orchestrator", "gateway"]]
DISPLAY = {"llm_proxy": "llm-proxy"}


def stack_file(home: Path) -> Path:
    """Where a running `mnemo up` records its pids and endpoints."""
    return home / "run" / "stack.json"


def build_env(settings: Settings, home: Path, nats_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "MNEMO_HOME": str(home),
        "MNEMO_NATS_URL": nats_url,
        "MNEMO_HOST": settings.host,
        "MNEMO_HTTP_PORT": str(settings.http_port),
        "MNEMO_GRPC_PORT": str(settings.grpc_port),
        "MNEMO_MEMORY_PORT": str(settings.memory_port),
        "MNEMO_LLM_PORT": str(settings.llm_port),
        "MNEMO_ORCHESTRATOR_PORT": str(settings.orchestrator_port),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def nats_addresses(url: str) -> list[tuple[str, int]]:
    """The (host, port) of each server of MNEMO_NATS_URL: one URL or a comma-separated list (a
    cluster), as the services' NATS client takes it."""
    out = []
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlparse(part if "://" in part else f"nats://{part}")
        out.append((parsed.hostname or "127.0.0.1", parsed.port or 4222))
    return out


async def any_nats_reachable(url: str) -> bool:
    """Whether at least one server of `url` accepts connections: a cluster with a node down still
    serves, and the services' clients reconnect to the others."""
    for host, port in nats_addresses(url):
        if await tcp_health(host, port)():
            return True
    return False


def nats_spec(settings: Settings, home: Path, env: Mapping[str, str]) -> ProcessSpec:
    data = home / "nats"
    data.mkdir(parents=True, exist_ok=True)
    return ProcessSpec(
        name="nats",
        argv=[nats_server_binary(), "-a", settings.host, "-p", str(settings.nats_port), "-js",
              "-sd", str(data),
              *(["-m", str(settings.nats_monitor_port)] if settings.nats_monitor_port else [])],
        log_path=home / "logs" / "nats.log",
        health=tcp_health(settings.host, settings.nats_port),
        ports=[settings.nats_port],
        env=nats_env(env),
    )


def nats_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The embedded nats-server's environment: one Go scheduler thread unless GOMAXPROCS says
    otherwise. The stack's messages arrive one or a few at a time, and with a thread per core the Go
    runtime hands each one between threads: a quarter of the server's CPU per turn (measured, 2 cores)."""
    return {**environ, "GOMAXPROCS": environ.get("GOMAXPROCS") or "1"}


def orchestrator_specs(settings: Settings, home: Path, env: dict[str, str]) -> list[ProcessSpec]:
    """`settings.orchestrators` replicas, each with its own health port (orchestrator_port + i);
    one replica keeps the plain name "orchestrator"."""
    if settings.orchestrators == 1:
        return [service_spec("orchestrator", settings, home)]
    specs = []
    for i in range(settings.orchestrators):
        name, port = f"orchestrator-{i + 1}", settings.orchestrator_port + i
        specs.append(ProcessSpec(name, [sys.executable, "-m", "mnemo.orchestrator"], home / "logs" / f"{name}.log",
                                 grpc_health(f"{settings.host}:{port}"), ports=[port],
                                 env={**env, "MNEMO_ORCHESTRATOR_PORT": str(port)}))
    return specs


def combined_waves(settings: Settings, home: Path, env: dict[str, str],
                   with_gateway: bool = True) -> list[list[ProcessSpec]]:
    """The combined layout: one process runs memory, llm-proxy, the gateway and (with one replica) the
    orchestrator; with more replicas, each is a process of its own, started after it. Without the
    gateway (the core layout), the gateway is a process of its own, started last."""
    host = settings.host
    argv = [sys.executable, "-m", "mnemo.cli.combined", *([] if with_gateway else ["--no-gateway"])]
    log_path = home / "logs" / "services.log"
    ports = [settings.memory_port, settings.llm_port]
    listening = [grpc_health(f"{host}:{settings.memory_port}"), grpc_health(f"{host}:{settings.llm_port}")]
    if with_gateway:
        ports = [settings.http_port, settings.grpc_port, *ports]
    gateway = [] if with_gateway else [[service_spec("gateway", settings, home)]]
    if settings.orchestrators == 1:
        # With the gateway in it, /healthz vouches for the whole process; without, each service's health.
        ready = (http_health(f"http://{host}:{settings.http_port}/healthz") if with_gateway
                 else all_healthy(*listening, grpc_health(f"{host}:{settings.orchestrator_port}")))
        return [[ProcessSpec("services", argv, log_path, ready, ports=[*ports, settings.orchestrator_port])],
                *gateway]
    # /healthz needs an orchestrator: the process is ready when its services listen.
    if with_gateway:
        listening.append(tcp_health(host, settings.http_port))
    return [[ProcessSpec("services", [*argv, "--no-orchestrator"], log_path, all_healthy(*listening), ports=ports)],
            orchestrator_specs(settings, home, env), *gateway]


def stack_layout(settings: Settings) -> str:
    """The layout `mnemo up` runs. "auto" is core with one orchestrator replica and split with more.

    Core rather than combined: the gateway's HTTP work (parsing, routing, validation, responses) is a
    fifth of the event loop's time per turn, and in a process of its own it runs on another core. A
    turn crosses JetStream between the gateway and the orchestrator in either layout, so nothing is
    added to its path (50 agents x 10 turns at once on 2 cores: 318-369 against 270-324 turns/s, and
    207-233 against 151-230 when the machine ran slower; a sequential turn ~0.6 ms more CPU, as two
    processes wake for its events; ~90 MB more RSS).

    Split with more replicas: they are processes of their own either way, so the combined process no
    longer saves their calls a transport, and its one event loop (gateway, memory and llm-proxy for
    every replica) became the bottleneck (bench/scale.py, 1,000 agents at 250 turns/s: p99 331
    against 431 ms with 2 replicas, 402 against 697-723 ms with 3, the same CPU per turn, ~200 MB more
    RSS)."""
    if settings.layout != "auto":
        return settings.layout
    return "core" if settings.orchestrators == 1 else "split"


def service_waves(settings: Settings, home: Path, env: dict[str, str]) -> list[list[ProcessSpec]]:
    """The processes of the stack, wave by wave, for the configured layout."""
    layout = stack_layout(settings)
    if layout in ("combined", "core"):
        waves = combined_waves(settings, home, env, with_gateway=layout == "combined")
    else:
        waves = [wave_specs(wave, settings, home, env) for wave in SERVICE_WAVES]
    return with_metrics_ports(waves, settings, env)


def with_metrics_ports(waves: list[list[ProcessSpec]], settings: Settings,
                       env: dict[str, str]) -> list[list[ProcessSpec]]:
    """With MNEMO_METRICS_PORT set, each process serves /metrics on a port of its own, in start order
    from that port on (the first process keeps it; orchestrator replicas follow): one port for all
    would let only the first process start."""
    if settings.metrics_port <= 0:
        return waves
    port = settings.metrics_port
    for wave in waves:
        for spec in wave:
            spec.env = {**(spec.env or env), "MNEMO_METRICS_PORT": str(port)}
            spec.ports = [*spec.ports, port]
            port += 1
    return waves


def metrics_ports(settings: Settings, home: Path) -> dict[str, int]:
    """Which process serves /metrics on which port (empty without MNEMO_METRICS_PORT)."""
    return {spec.name: int(spec.env["MNEMO_METRICS_PORT"])
            for wave in service_waves(settings, home, {}) for spec in wave
            if spec.env and "MNEMO_METRICS_PORT" in spec.env}


def wave_specs(wave: list[str], settings: Settings, home: Path, env: dict[str, str]) -> list[ProcessSpec]:
    specs: list[ProcessSpec] = []
    for name in wave:
        if name == "orchestrator":
            specs.extend(orchestrator_specs(settings, home, env))
        else:
            specs.append(service_spec(name, settings, home))
    return specs


def service_spec(name: str, settings: Settings, home: Path) -> ProcessSpec:
    host = settings.host
    argv = [sys.executable, "-m", f"mnemo.{name}"]
    log_path = home / "logs" / f"{DISPLAY.get(name, name)}.log"
    if name == "gateway":
        return ProcessSpec("gateway", argv, log_path,
                           http_health(f"http://{host}:{settings.http_port}/healthz"),
                           ports=[settings.http_port, settings.grpc_port])
    port = {"memory": settings.memory_port, "llm_proxy": settings.llm_port,
            "orchestrator": settings.orchestrator_port}[name]
    return ProcessSpec(DISPLAY.get(name, name), argv, log_path, grpc_health(f"{host}:{port}"), ports=[port])


def endpoints(settings: Settings, home: Path, nats_url: str) -> dict[str, str]:
    host = settings.host
    metrics = {f"Metrics ({name})": f"http://{host}:{port}/metrics"
               for name, port in metrics_ports(settings, home).items()}
    return {
        "REST": f"http://{host}:{settings.http_port}",
        "Docs": f"http://{host}:{settings.http_port}/docs",
        "Console": f"http://{host}:{settings.http_port}/ui/",
        "gRPC": f"{host}:{settings.grpc_port}",
        "NATS": nats_url,
        "API key": str(home / "api_key"),
        "Logs": str(home / "logs"),
        **metrics,
    }


def print_endpoints(console: Console, eps: dict[str, str], elapsed: float) -> None:
    table = Table(title=f"Mnemo is up ({elapsed:.1f}s)", show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in eps.items():
        table.add_row(key, value)
    console.print(table)
    console.print("Press Ctrl-C to stop.  Chat with: [bold]mnemo run[/bold]")


def _validate_ports(settings: Settings) -> None:
    ports = {"MNEMO_HTTP_PORT": settings.http_port, "MNEMO_GRPC_PORT": settings.grpc_port,
             "MNEMO_MEMORY_PORT": settings.memory_port, "MNEMO_LLM_PORT": settings.llm_port,
             "MNEMO_ORCHESTRATOR_PORT": settings.orchestrator_port}
    if not settings.nats_url:
        ports["MNEMO_NATS_PORT"] = settings.nats_port
    zero = [k for k, v in ports.items() if v <= 0]
    if zero:
        raise StartupError("mnemo", f"needs fixed ports; set {', '.join(zero)} to a port number")
    # Replicas 2..N take the ports after MNEMO_ORCHESTRATOR_PORT.
    for i in range(1, settings.orchestrators):
        ports[f"MNEMO_ORCHESTRATOR_PORT+{i}"] = settings.orchestrator_port + i
    if settings.orchestrator_port + settings.orchestrators - 1 > 65535:
        raise StartupError("mnemo", f"MNEMO_ORCHESTRATOR_PORT + {settings.orchestrators} replicas exceeds 65535")
    if settings.metrics_port > 0:  # one per process (with_metrics_ports): at most 4 + the replicas
        for i in range(4 + settings.orchestrators):
            ports[f"MNEMO_METRICS_PORT+{i}"] = settings.metrics_port + i
    if len(set(ports.values())) != len(ports):
        raise StartupError("mnemo", f"port settings collide: {ports}")


async def run_stack(settings: Settings, console: Console, timeout: float = 120.0, grace: float = 10.0,
                    policy: RestartPolicy | None = None) -> int:
    """Start everything, print the endpoints, restart what dies, run until SIGINT/SIGTERM (or a crash
    loop); returns the exit code."""
    home = settings.home_dir.resolve()
    home.mkdir(parents=True, exist_ok=True)
    _validate_ports(settings)
    nats_url = settings.nats_url or f"nats://{settings.host}:{settings.nats_port}"
    env = build_env(settings, home, nats_url)
    supervisor = Supervisor(env, grace=grace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    began = time.monotonic()
    code = 0
    try:
        with console.status("starting Mnemo...") as status:
            if settings.nats_url:
                if not await any_nats_reachable(settings.nats_url):
                    raise StartupError("nats", f"at {settings.nats_url} (MNEMO_NATS_URL) accepts no connections")
            else:
                status.update("starting nats-server...")
                await supervisor.start_wave([nats_spec(settings, home, env)], timeout, stop)
            for specs in service_waves(settings, home, env):
                status.update(f"starting {', '.join(s.name for s in specs)}...")
                await supervisor.start_wave(specs, timeout, stop)
        elapsed = time.monotonic() - began
        eps = endpoints(settings, home, nats_url)
        stack = StackRecord(home, supervisor, eps, elapsed)
        stack.write()
        print_endpoints(console, eps, elapsed)
        tracker = RestartTracker(policy)
        await supervisor.supervise(stop, tracker, ConsoleRestarts(console, stack, tracker), health_timeout=timeout)
        console.print("stopping Mnemo...")
    except CrashLoopError as exc:
        console.print(f"[bold red]error:[/] {exc}. Last lines of {exc.log_path}:", highlight=False, soft_wrap=True)
        console.print(exc.log_tail or "(empty log)", markup=False, highlight=False)
        code = 1
    except StartupError as exc:
        if stop.is_set() and exc.reason == "startup interrupted":
            console.print("startup interrupted; stopping.")
            code = 130
        else:
            console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            if exc.log_tail:
                console.print(f"last lines of {exc.log_path}:")
                console.print(exc.log_tail, markup=False, highlight=False)
            code = 1
    finally:
        await supervisor.stop_all(on_stop=lambda name: console.print(f"  stopping {name}", style="dim"))
        stack_file(home).unlink(missing_ok=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if code == 0:
        console.print("Mnemo stopped.")
    return code


class ConsoleRestarts(RestartEvents):
    """Says on the console which process died, how, its last log lines, and when it is back;
    keeps the stack file current for `mnemo status`."""

    def __init__(self, console: Console, stack: StackRecord, tracker: RestartTracker) -> None:
        self.console = console
        self.stack = stack
        self.limit = f"Mnemo stops at {tracker.policy.max_exits} within {tracker.policy.window:.0f}s"

    def exited(self, running: RunningProcess, status: str, decision: RestartDecision, log_tail: str) -> None:
        self.console.print(f"[bold yellow]warning:[/] {running.spec.name} (pid {running.pid}) exited unexpectedly "
                           f"({status}); restarting in {decision.delay:.1f}s (exit {decision.exits}; "
                           f"{self.limit}). Last lines of {running.spec.log_path}:", highlight=False, soft_wrap=True)
        self.console.print(log_tail or "(empty log)", markup=False, highlight=False)

    def restart_failed(self, running: RunningProcess, reason: str, decision: RestartDecision) -> None:
        self.console.print(f"[bold yellow]warning:[/] {running.spec.name} did not restart: {reason}; "
                           f"retrying in {decision.delay:.1f}s (failure {decision.exits}; {self.limit})",
                           highlight=False, soft_wrap=True)

    def restarted(self, running: RunningProcess) -> None:
        self.console.print(f"  restarted {running.spec.name} (pid {running.pid}, restarts {running.restarts})",
                           style="dim", highlight=False)
        self.stack.write()

    def healthy(self, running: RunningProcess, seconds: float) -> None:
        self.console.print(f"  {running.spec.name} is healthy again ({seconds:.1f}s)", style="dim", highlight=False)


class StackRecord:
    """The stack file of a running `mnemo up`: its pid, endpoints and, per process, pid, start time
    and restart count (what `mnemo status` shows). Rewritten whole and atomically."""

    def __init__(self, home: Path, supervisor: Supervisor, eps: dict[str, str], elapsed: float) -> None:
        self.path = stack_file(home)
        self.supervisor = supervisor
        self.eps = eps
        self.elapsed = elapsed
        self.started_at = time.time()

    def write(self) -> None:
        children = [{"name": r.spec.name, "pid": r.pid, "started_at": round(r.started_wall, 3),
                     "restarts": r.restarts} for r in self.supervisor.running]
        record = {"pid": os.getpid(), "started_at": round(self.started_at, 3),
                  "processes": self.supervisor.pids(), "children": children, "endpoints": self.eps,
                  "startup_seconds": round(self.elapsed, 2)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(self.path)


def read_stack(home: Path) -> dict[str, Any] | None:
    """What a running `mnemo up` under `home` recorded, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(stack_file(home).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def up(settings: Settings, timeout: float = 120.0, grace: float = 10.0) -> int:
    """Run the stack in the foreground; the exit code for the CLI."""
    console = Console()
    return asyncio.run(run_stack(settings, console, timeout, grace))
