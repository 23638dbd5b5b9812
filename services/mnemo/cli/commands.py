"""The non-chat commands: agents, personas / humans, documents, export / import, stack status."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mnemo.cli import state
from mnemo.cli.render import print_memory
from mnemo.client import Mnemo, MnemoError

console = Console()
agents_app = typer.Typer(help="List, show and delete agents.", no_args_is_help=True)
personas_app = typer.Typer(help="The persona library.", no_args_is_help=True)
humans_app = typer.Typer(help="The human-profile library.", no_args_is_help=True)


def client() -> Mnemo:
    return Mnemo()


@agents_app.command("list")
def agents_list() -> None:
    """List the agents of your tenant."""
    agents = client().agents.list()
    last = state.last_agent()
    table = Table(box=None, header_style="bold")
    # Ids are never shortened: they are what the other commands take.
    table.add_column("id", no_wrap=True, min_width=max((len(a.id) + 2 for a in agents), default=2))
    table.add_column("name")
    table.add_column("model")
    table.add_column("created", no_wrap=True)
    for a in agents:
        table.add_row(a.id + (" *" if a.id == last else ""), escape(a.name), a.model, a.created_at[:19])
    console.print(table if agents else "no agents yet: `mnemo run` creates one")


@agents_app.command("show")
def agents_show(agent_id: str) -> None:
    """Show an agent: configuration, core memory and counts."""
    c = client()
    agent = c.agents.get(agent_id)
    console.print(f"[bold]{escape(agent.name)}[/bold] ({agent.id})  model: {agent.model or 'default'}  "
                  f"context window: {agent.context_window or 'default'}  created: {agent.created_at}")
    print_memory(console, c.agents.memory(agent_id))


@agents_app.command("delete")
def agents_delete(agent_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Delete an agent and all its memory."""
    if not yes and not typer.confirm(f"Delete agent {agent_id} and all its memory?"):
        raise typer.Exit(1)
    client().agents.delete(agent_id)
    if state.last_agent() == agent_id:
        state.remember_agent(None)
    console.print(f"deleted {agent_id}")


def _templates_list(kind: str) -> None:
    templates = getattr(client(), f"{kind}s").list()
    table = Table("name", "text", box=None, header_style="bold")
    for t in templates:
        first = t.text.strip().splitlines()[0] if t.text.strip() else ""
        table.add_row(escape(t.name), escape(first[:80] + ("…" if len(first) > 80 else "")))
    console.print(table if templates else f"no {kind}s")


def _templates_add(kind: str, file: Path, name: str | None) -> None:
    text = file.read_text()
    template_name = name or file.stem
    resource = getattr(client(), f"{kind}s")
    try:
        t = resource.create(template_name, text)
        verb = "added"
    except MnemoError as exc:
        if exc.status != 409:
            raise
        t = resource.update(template_name, text)
        verb = "updated"
    console.print(f"{verb} {kind} {escape(t.name)}")


@personas_app.command("list")
def personas_list() -> None:
    """List personas."""
    _templates_list("persona")


@personas_app.command("add")
def personas_add(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                 name: str = typer.Option(None, help="name (default: the file name)")) -> None:
    """Add (or replace) a persona from a text file."""
    _templates_add("persona", file, name)


@humans_app.command("list")
def humans_list() -> None:
    """List human profiles."""
    _templates_list("human")


@humans_app.command("add")
def humans_add(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
               name: str = typer.Option(None, help="name (default: the file name)")) -> None:
    """Add (or replace) a human profile from a text file."""
    _templates_add("human", file, name)


def load(agent_id: str, files: list[Path]) -> None:
    """Load documents into an agent's archival memory, with a progress bar."""
    c = client()
    c.agents.get(agent_id)  # a clear 404 before any upload
    total = sum(f.stat().st_size for f in files)
    passages = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("loading", total=total or 1)
        for f in files:
            progress.update(task, description=f"loading {f.name}")
            result = c.agents.upload_document(agent_id, f)
            passages += result.passages
            progress.advance(task, f.stat().st_size)
    console.print(f"loaded {len(files)} file(s) into archival memory: {passages} passages")


def export(agent_id: str, file: Path | None) -> None:
    """Write an agent's full export (JSON) to a file."""
    data = client().agents.export(agent_id)
    target = file or Path(f"{agent_id}.json")
    target.write_bytes(data)
    console.print(f"exported {agent_id} to {target}")


def import_(file: Path) -> None:
    """Create an agent from an export file."""
    agent = client().agents.import_(file.read_bytes())
    console.print(f"imported agent {escape(agent.name)} ({agent.id})")


def status(home: Path) -> int:
    """Print the processes of the `mnemo up` running under `home`; 1 when none is running."""
    from mnemo.cli.up import read_stack, stack_file

    record = read_stack(home)
    if record is None or not _pid_alive(int(record.get("pid", 0))):
        console.print(f"Mnemo is not running (no live `mnemo up` with home {home}); start it with `mnemo up`",
                      highlight=False)
        return 1
    now = time.time()
    up_for = _duration(now - float(record.get("started_at", now)))
    table = Table(title=f"mnemo up: pid {record['pid']}, up {up_for}", title_justify="left",
                  caption=str(stack_file(home)), caption_justify="left", header_style="bold", box=None)
    for column in ("process", "pid", "uptime", "restarts", "alive"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("pid", "restarts") else "left")
    for child in record.get("children", []):
        alive = _pid_alive(int(child["pid"]))
        table.add_row(child["name"], str(child["pid"]),
                      _duration(now - float(child["started_at"])) if alive else "-",
                      str(child["restarts"]), "yes" if alive else "[red]no[/red]")
    console.print(table)
    return 0


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds: float) -> str:
    """'42s', '3m05s', '2h07m', '3d04h'."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
