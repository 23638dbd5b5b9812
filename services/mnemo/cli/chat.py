"""`mnemo run`: pick or resume an agent, then chat with it, events streaming as they arrive."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm, Prompt

from mnemo.cli import state
from mnemo.cli.render import print_event, print_memory, print_messages
from mnemo.client import Agent, Event, Mnemo, MnemoError, NotFoundError, Template
from mnemo.client.tool_loop import waiting_calls

HELP = """\
/save              save a checkpoint of the agent (prints its id)
/load <id|file>    restore a checkpoint, or import an exported agent file
/memory            show core memory and the recall / archival counts
/dump [n]          show the last n messages (default 10)
/pop [n]           remove the last n messages from the conversation (default 3)
/retry             pop the last exchange and send the last user message again
/rewrite <text>    replace the text of the agent's last reply
/pending           the calls a paused turn waits on (approve the ones that need it)
/help              this help
/exit              leave (the agent stays; `mnemo run` resumes it)"""


@dataclass
class RunOptions:
    agent: str | None = None
    model: str | None = None
    persona: str | None = None
    human: str | None = None
    name: str | None = None
    new: bool = False
    yes: bool = False        # never ask: defaults for everything not given
    verbose: bool = False


def _interactive(opts: RunOptions) -> bool:
    return not opts.yes and sys.stdin.isatty()


def _choose_template(console: Console, kind: str, templates: list[Template], given: str | None,
                     ask: bool) -> tuple[str | None, str | None]:
    """(template name, literal text): a flag naming a file gives its text, otherwise a template name."""
    if given:
        path = Path(given)
        if path.is_file():
            return None, path.read_text()
        return given, None
    names = [t.name for t in templates]
    if not names:
        return None, None
    if not ask:
        return names[0], None
    console.print(f"{kind}s: " + ", ".join(names))
    return Prompt.ask(f"Select {kind}", choices=names, default=names[0], console=console), None


def _choose_model(client: Mnemo, console: Console) -> str | None:
    """A chat model the server offers (GET /v1/models), its default model preselected; free text
    (or the server's default) when the list cannot be had."""
    try:
        listing = client.models.list()
        names = [m["name"] for m in listing.get("models", []) if not m.get("embedding")]
        default = listing.get("default_model") or (names[0] if names else "")
    except MnemoError as exc:
        console.print(f"(cannot list the models: {escape(str(exc))})", style="dim")
        names, default = [], ""
    if not names:
        return Prompt.ask("Select model ('default' = the server's)", default="default", console=console)
    if default not in names:
        names.insert(0, default)
    console.print("models: " + ", ".join(f"{n} (default)" if n == default else n for n in names))
    return Prompt.ask("Select model", choices=names, default=default, console=console, show_choices=False)


def create_agent(client: Mnemo, console: Console, opts: RunOptions) -> Agent:
    ask = _interactive(opts)
    model = opts.model
    if model is None and ask:
        model = _choose_model(client, console)
    if model in ("", "default"):
        model = None
    persona_name, persona_text = _choose_template(console, "persona", client.personas.list(), opts.persona, ask)
    human_name, human_text = _choose_template(console, "human", client.humans.list(), opts.human, ask)
    name = opts.name
    if name is None and ask:
        name = Prompt.ask("Agent name", default="agent", console=console)
    with console.status("creating agent..."):
        agent = client.agents.create(name=name or "agent", model=model, persona=persona_text,
                                     persona_name=persona_name, human=human_text, human_name=human_name)
    console.print(f"Created agent [bold]{escape(agent.name)}[/bold] ({agent.id})")
    return agent


def pick_agent(client: Mnemo, console: Console, opts: RunOptions) -> Agent:
    """The agent given, else the last one (resumed), else a new one."""
    if opts.agent:
        return client.agents.get(opts.agent)
    last = state.last_agent()
    if last and not opts.new:
        try:
            agent = client.agents.get(last)
        except NotFoundError:
            console.print(f"(the last agent {last} no longer exists; creating a new one)", style="dim")
        else:
            console.print(f"Resuming agent [bold]{escape(agent.name)}[/bold] ({agent.id})")
            return agent
    return create_agent(client, console, opts)


class ChatSession:
    """The chat loop and its slash commands."""

    def __init__(self, client: Mnemo, console: Console, agent: Agent, verbose: bool = False,
                 answers: TextIO | None = None) -> None:
        self.client = client
        self.console = console
        self.agent = agent
        self.verbose = verbose
        self.answers = answers  # where approvals are read from (None: the terminal)

    def send(self, text: str) -> None:
        events = []
        for event in self.client.agents.stream_message(self.agent.id, text):
            print_event(self.console, event, self.verbose)
            events.append(event)
        self.answer_pauses(events)

    def answer_pauses(self, events: list[Event]) -> None:
        """Ask about each call of the paused turn that needs approval; a client-side tool's call is
        left to the application that gave the tool (the turn waits for it)."""
        while True:
            calls = waiting_calls(events)
            approval = next((c for c in calls if c.kind == "approval"), None)
            if approval is None:
                for call in calls:
                    self.console.print(f"(the turn waits for the result of {escape(call.name)}, call "
                                       f"{call.call_id}; a message you send now runs after it)", style="dim")
                return
            allow = Confirm.ask(f"Allow {escape(approval.name)}?", default=False, console=self.console,
                                stream=self.answers)
            reason = "" if allow else Prompt.ask("Reason for the agent (optional)", default="", console=self.console,
                                                 stream=self.answers)
            result = self.client.agents.approve(self.agent.id, approval.call_id, allow, reason)
            for event in result.events:
                print_event(self.console, event, self.verbose)
            events = [*events, *result.events]
            if not result.paused:
                return

    def loop(self) -> None:
        self.console.print("Type a message, or /help for commands.", style="dim")
        while True:
            try:
                line = self.console.input("[bold green]> [/bold green]").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                break
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        break
                else:
                    self.send(line)
            except KeyboardInterrupt:
                self.console.print("(interrupted; the turn goes on in the background)", style="dim")
            except MnemoError as exc:
                self.console.print(f"error: {escape(exc.reason)}", style="red")
        self.console.print(f"Bye. `mnemo run` resumes {self.agent.name} ({self.agent.id}).")

    def command(self, line: str) -> bool:
        """Run one slash command; False to leave the chat."""
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        agent_id = self.agent.id
        c = self.console
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            c.print(HELP, markup=False, highlight=False)
        elif name == "/save":
            cp = self.client.agents.checkpoint(agent_id)
            c.print(f"💾 saved checkpoint {cp.id}")
        elif name == "/load":
            self._load(arg)
        elif name == "/memory":
            print_memory(c, self.client.agents.memory(agent_id))
        elif name == "/dump":
            n = _count(arg, 10)
            page = self.client.agents.recall(agent_id, page_size=n)
            print_messages(c, list(reversed([h.message for h in page.hits]))[-n:])
        elif name == "/pop":
            removed = self.client.agents.pop_messages(agent_id, _count(arg, 3))
            c.print(f"popped {len(removed)} message(s)")
        elif name == "/retry":
            self._retry()
        elif name == "/pending":
            self._pending()
        elif name == "/rewrite":
            if not arg:
                c.print("usage: /rewrite <new text of the last reply>", style="red")
            else:
                self.client.agents.rewrite_message(agent_id, arg)
                c.print("rewrote the last reply")
        else:
            c.print(f"unknown command {escape(name)}; /help lists them", style="red")
        return True

    def _load(self, arg: str) -> None:
        if not arg:
            self.console.print("usage: /load <checkpoint-id | exported file>", style="red")
            return
        path = Path(arg).expanduser()
        if path.is_file():
            agent = self.client.agents.import_(path.read_bytes())
            self.agent = agent
            state.remember_agent(agent.id)
            self.console.print(f"📂 now chatting with {escape(agent.name)} ({agent.id}), imported from {path}")
        else:
            self.agent = self.client.agents.restore(self.agent.id, arg)
            self.console.print(f"📂 restored checkpoint {escape(arg)}")

    def _pending(self) -> None:
        """The paused turn's calls, with the approvals asked for again."""
        pending = self.client.agents.pending_calls(self.agent.id)
        if not pending.calls:
            self.console.print("no turn is paused")
            return
        events = [Event(type="approval_requested" if c.kind == "approval" else "tool_call_requested",
                        call_id=c.call_id, name=c.name, arguments=c.arguments, turn_id=pending.turn_id)
                  for c in pending.calls]
        events.append(Event(type="turn_paused", call_ids=[c.call_id for c in pending.calls], turn_id=pending.turn_id))
        for event in events[:-1]:
            print_event(self.console, event, self.verbose)
        self.answer_pauses(events)

    def _retry(self) -> None:
        """Pop messages back to (and including) the last user message, then send it again."""
        for _ in range(50):
            removed = self.client.agents.pop_messages(self.agent.id, 1)
            if not removed:
                break
            user = next((m for m in removed if m.role == "user"), None)
            if user is not None:
                self.console.print(f"retrying: {escape(user.text)}", style="dim")
                self.send(_unwrap_user_text(user.text))
                return
        self.console.print("nothing to retry", style="red")


def _unwrap_user_text(text: str) -> str:
    """User messages may be stored MemGPT-style as JSON {"type": "user_message", "message": ...}."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return text


def _count(arg: str, default: int) -> int:
    try:
        return max(1, int(arg)) if arg else default
    except ValueError:
        return default


def run(client: Mnemo, console: Console, opts: RunOptions) -> None:
    if not client.healthy():
        raise MnemoError(0, f"Mnemo is not running at {client.base_url}: start it with `mnemo up`")
    agent = pick_agent(client, console, opts)
    state.remember_agent(agent.id)
    ChatSession(client, console, agent, opts.verbose).loop()
