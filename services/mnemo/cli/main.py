"""The `mnemo` command (typer): `mnemo up`, `mnemo run` and the management commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from mnemo.cli import commands
from mnemo.client import MnemoError

if TYPE_CHECKING:
    from mnemo.common.config import Settings

err_console = Console(stderr=True)


class MnemoApp(typer.Typer):
    """Expected errors (server down, 404, bad input) end as one clear line, not a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except MnemoError as exc:
            err_console.print(f"[bold red]error:[/] {escape(exc.reason)}"
                              + (f" (HTTP {exc.status})" if exc.status else ""))
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)


app = MnemoApp(help="Mnemo: memory for LLM agents. Start with `mnemo up`, then `mnemo run`.",
               no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(commands.agents_app, name="agents")
app.add_typer(commands.personas_app, name="personas")
app.add_typer(commands.humans_app, name="humans")


def _settings(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment and the command's options; a bad one is one clear error."""
    from mnemo.common.config import Settings

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"MNEMO_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        raise MnemoError(0, f"invalid setting {problems}") from None


@app.command()
def up(
    home: Path = typer.Option(None, "--home", help="data directory (default $MNEMO_HOME or ~/.mnemo)"),
    http_port: int = typer.Option(None, "--http-port", help="REST port (default $MNEMO_HTTP_PORT or 8283)"),
    grpc_port: int = typer.Option(None, "--grpc-port", help="public gRPC port (default $MNEMO_GRPC_PORT or 50051)"),
    orchestrators: int = typer.Option(None, "--orchestrators", min=1,
                                      help="orchestrator replicas (default $MNEMO_ORCHESTRATORS or 1)"),
    layout: str = typer.Option(None, "--layout",
                               help="combined: the services in one process; core: the gateway in a "
                                    "process of its own, the others in one; split: one process each; "
                                    "auto: core with one orchestrator, split with more "
                                    "(default $MNEMO_LAYOUT or auto)"),
    timeout: float = typer.Option(180.0, help="seconds each service may take to become healthy"),
    grace: float = typer.Option(10.0, help="seconds a service gets to stop before SIGKILL"),
) -> None:
    """Start NATS and the four services on this machine, restarting any that dies; Ctrl-C stops them all."""
    from mnemo.cli.up import up as run_up

    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = home
    if http_port is not None:
        overrides["http_port"] = http_port
    if grpc_port is not None:
        overrides["grpc_port"] = grpc_port
    if orchestrators is not None:
        overrides["orchestrators"] = orchestrators
    if layout is not None:
        overrides["layout"] = layout
    raise typer.Exit(run_up(_settings(overrides), timeout=timeout, grace=grace))


@app.command()
def status(home: Path = typer.Option(None, "--home", help="data directory (default $MNEMO_HOME or ~/.mnemo)")) -> None:
    """The processes of the running `mnemo up`: pid, uptime, restarts, alive."""
    settings = _settings({"home": home} if home is not None else {})
    raise typer.Exit(commands.status(settings.home_dir.resolve()))


@app.command()
def run(
    agent: str = typer.Option(None, "--agent", "-a", help="chat with this agent id"),
    model: str = typer.Option(None, "--model", "-m", help="model of a new agent"),
    persona: str = typer.Option(None, "--persona", help="persona name or a text file"),
    human: str = typer.Option(None, "--human", help="human profile name or a text file"),
    name: str = typer.Option(None, "--name", help="name of a new agent"),
    new: bool = typer.Option(False, "--new", help="create a new agent instead of resuming the last one"),
    yes: bool = typer.Option(False, "--yes", "-y", help="ask nothing: defaults for what is not given"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show every event, send_message and usage too"),
) -> None:
    """Chat with an agent (the last one, resumed, unless --agent or --new)."""
    from mnemo.cli.chat import RunOptions
    from mnemo.cli.chat import run as run_chat
    from mnemo.client import Mnemo

    opts = RunOptions(agent=agent, model=model, persona=persona, human=human, name=name, new=new,
                      yes=yes, verbose=verbose)
    run_chat(Mnemo(), Console(), opts)


@app.command()
def mcp(url: str = typer.Option(None, "--url", help="the gateway (default $MNEMO_BASE_URL or the local mnemo up)"),
        key: str = typer.Option(None, "--key", help="API key (default $MNEMO_API_KEY or $MNEMO_HOME/api_key)"),
        ) -> None:
    """Serve Mnemo's memory tools over stdio to an MCP client (configure it to run `mnemo mcp`)."""
    import asyncio
    import logging

    from mnemo.mcp_server.stdio import serve_stdio

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the MCP messages only
    asyncio.run(serve_stdio(url, key))


@app.command()
def load(agent: str = typer.Argument(..., help="agent id"),
         files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Load documents (text, markdown, PDF) into an agent's archival memory."""
    commands.load(agent, files)


@app.command()
def export(agent: str = typer.Argument(..., help="agent id"),
           file: Path = typer.Argument(None, help="output file (default <agent>.json)")) -> None:
    """Export an agent (config, memory, history) to a file."""
    commands.export(agent, file)


@app.command("import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Create an agent from an export file."""
    commands.import_(file)


if __name__ == "__main__":
    app()
