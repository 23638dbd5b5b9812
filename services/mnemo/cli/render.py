"""How agent events, memory and messages look on the terminal (rich; readable without colour)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from mnemo.client.models import CoreMemory, Event, Message

# send_message is shown as the reply itself (🤖), not as a function call.
_QUIET_FUNCTIONS = {"send_message"}


def _args_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    if isinstance(arguments, dict):
        arguments = {k: v for k, v in arguments.items() if k != "request_heartbeat"}
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return json.dumps(arguments, ensure_ascii=False)


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def print_event(console: Console, event: Event, verbose: bool = False) -> None:
    """One line (or a few) per event, as the MemGPT tutorial showed them."""
    kind = event.type
    if kind == "inner_thought":
        console.print(f"💭 {escape(event.text or '')}", style="dim italic")
    elif kind == "function_call":
        if event.name in _QUIET_FUNCTIONS and not verbose:
            return
        console.print(f"⚡🧠 \\[function] {escape(event.name or '')}({escape(_args_text(event.arguments))})",
                      style="cyan")
    elif kind == "function_return":
        if event.name in _QUIET_FUNCTIONS and not verbose:
            return
        style = "red" if event.status == "error" else "dim"
        console.print(f"⚡ {escape('[' + (event.status or 'ok') + ']')} {escape(event.name or '')} → "
                      f"{escape(_short(event.result))}", style=style)
    elif kind == "assistant_message":
        console.print(f"🤖 {escape(event.text or '')}", style="bold yellow")
    elif kind == "system_alert":
        console.print(f"⚠️  {escape(event.text or '')}", style="magenta")
    elif kind == "usage":
        if verbose:
            console.print(f"   tokens: {event.usage or event.model_extra}", style="dim")
    elif kind == "turn_completed":
        if event.stop_reason and event.stop_reason != "end_turn":
            console.print(f"(turn stopped: {escape(event.stop_reason)})", style="dim")
    elif kind == "turn_failed":
        console.print(f"error: the turn failed: {escape(event.error or 'unknown error')}", style="red")
    elif kind == "tool_call_requested":
        console.print(f"🔧 \\[client tool] {escape(event.name or '')}({escape(_args_text(event.arguments))}) "
                      f"waits for its result (call {escape(event.call_id or '')})", style="cyan")
    elif kind == "approval_requested":
        console.print(f"✋ {escape(event.name or '')}({escape(_args_text(event.arguments))}) needs your approval",
                      style="bold cyan")
    elif kind == "turn_paused":
        if verbose:
            console.print(f"(turn paused on {', '.join(event.call_ids or [])})", style="dim")
    elif verbose:
        console.print(f"{kind}: {escape(_short(event.model_dump(exclude_none=True)))}", style="dim")


def print_memory(console: Console, memory: CoreMemory) -> None:
    for block in memory.blocks:
        limit = f" ({len(block.value)}/{block.limit} chars)" if block.limit else ""
        console.print(Panel(escape(block.value) or "(empty)", title=f"{block.label}{limit}",
                            title_align="left"))
    if memory.summary:
        console.print(Panel(escape(memory.summary), title="summary", title_align="left", style="dim"))
    counts = memory.counts
    if counts is not None:
        console.print(f"recall memory: {counts.recall} messages · archival memory: {counts.archival} passages"
                      f" · in context: {counts.queue} messages")


def message_text(message: Message) -> str:
    if message.tool_calls:
        calls = "; ".join(f"{c.name}({_args_text(c.arguments)})" for c in message.tool_calls)
        return (message.text + " " if message.text else "") + f"[calls {calls}]"
    return message.text


def print_messages(console: Console, messages: list[Message]) -> None:
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("time", style="dim", no_wrap=True)
    table.add_column("role", style="cyan", no_wrap=True)
    table.add_column("message")
    for m in messages:
        table.add_row(m.created_at[:19].replace("T", " "), m.role + (f":{m.name}" if m.name else ""),
                      escape(_short(message_text(m), 500)))
    console.print(table)
