"""`mnemo up`: the whole stack on one machine (NATS + memory, llm-proxy, orchestrator, gateway)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table

from mnemo.cli.supervisor import (
    ProcessSpec,
    StartupError,
    Supervisor,
    grpc_health,
    http_health,
    nats_server_binary,
    tail,
    tcp_health,
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


def nats_spec(settings: Settings, home: Path) -> ProcessSpec:
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
    )


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
    return {
        "REST": f"http://{host}:{settings.http_port}",
        "Docs": f"http://{host}:{settings.http_port}/docs",
        "gRPC": f"{host}:{settings.grpc_port}",
        "NATS": nats_url,
        "API key": str(home / "api_key"),
        "Logs": str(home / "logs"),
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
    if len(set(ports.values())) != len(ports):
        raise StartupError("mnemo", f"port settings collide: {ports}")


async def run_stack(settings: Settings, console: Console, timeout: float = 120.0, grace: float = 10.0) -> int:
    """Start everything, print the endpoints, run until SIGINT/SIGTERM; returns the exit code."""
    home = settings.home_dir.resolve()
    home.mkdir(parents=True, exist_ok=True)
    _validate_ports(settings)
    nats_url = settings.nats_url or f"nats://{settings.host}:{settings.nats_port}"
    supervisor = Supervisor(build_env(settings, home, nats_url), grace=grace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    began = time.monotonic()
    code = 0
    try:
        with console.status("starting Mnemo...") as status:
            if settings.nats_url:
                parsed = urlparse(settings.nats_url)
                check = tcp_health(parsed.hostname or "127.0.0.1", parsed.port or 4222)
                if not await check():
                    raise StartupError("nats", f"at {settings.nats_url} (MNEMO_NATS_URL) accepts no connections")
            else:
                status.update("starting nats-server...")
                await supervisor.start_wave([nats_spec(settings, home)], timeout, stop)
            for wave in SERVICE_WAVES:
                status.update(f"starting {', '.join(DISPLAY.get(n, n) for n in wave)}...")
                await supervisor.start_wave([service_spec(n, settings, home) for n in wave], timeout, stop)
        elapsed = time.monotonic() - began
        eps = endpoints(settings, home, nats_url)
        _write_stack_file(home, supervisor.pids(), eps, elapsed)
        print_endpoints(console, eps, elapsed)
        dead = await supervisor.watch(stop)
        if dead is not None:
            console.print(f"[bold red]error:[/] {dead.spec.name} exited unexpectedly "
                          f"(code {dead.proc.returncode}); stopping. Last lines of {dead.spec.log_path}:")
            console.print(_log_tail_text(dead.spec.log_path), markup=False, highlight=False)
            code = 1
        else:
            console.print("stopping Mnemo...")
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


def _log_tail_text(path: Path) -> str:
    return tail(path) or "(empty log)"


def _write_stack_file(home: Path, pids: dict[str, int], eps: dict[str, str], elapsed: float) -> None:
    path = stack_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "processes": pids, "endpoints": eps,
                                "startup_seconds": round(elapsed, 2)}, indent=2))


def up(settings: Settings, timeout: float = 120.0, grace: float = 10.0) -> int:
    """Run the stack in the foreground; the exit code for the CLI."""
    console = Console()
    return asyncio.run(run_stack(settings, console, timeout, grace))
