"""The `mnemo` CLI through a pseudo-terminal against a running stack: the tutorial session."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pexpect

from mnemo.client import Mnemo
from tests.e2e.stack import Stack
from tests.helpers import eventually, venv_bin
from tests.scripted_llm import ScriptedLLM

PROMPT = "> "


def spawn(stack: Stack, home: Path, *args: str) -> pexpect.spawn:
    # The CLI's own state (cli.json) lives in a home of the test; the key comes from the stack's home.
    env = {**stack.env, "MNEMO_HOME": str(home), "MNEMO_API_KEY": stack.api_key, "TERM": "dumb"}
    child = pexpect.spawn(venv_bin("mnemo"), ["run", *args], env=env, encoding="utf-8", timeout=60,
                          dimensions=(50, 160))
    child.logfile_read = sys.stdout
    return child


def test_tutorial_session_create_chat_memory_save_resume_load(stack: Stack, scripted_llm: ScriptedLLM,
                                                              tmp_path: Path) -> None:
    home = tmp_path / "cli-home"
    child = spawn(stack, home)
    child.expect("Select model")
    child.sendline("")
    child.expect("Select persona")
    child.sendline("companion")
    child.expect("Select human")
    child.sendline("")
    child.expect("Agent name")
    child.sendline("tutor")
    child.expect(r"Created agent tutor \((agent-[^)]+)\)")
    agent_id = child.match.group(1)
    child.expect_exact(PROMPT)

    child.sendline("hello from the terminal")
    child.expect_exact("🤖 You said: hello from the terminal")
    child.expect_exact(PROMPT)

    child.sendline("/memory")
    child.expect("persona")
    child.expect(r"recall memory: (\d+) messages .* in context: (\d+) messages")
    assert int(child.match.group(1)) >= 1
    queue_at_save = int(child.match.group(2))
    child.expect_exact(PROMPT)

    child.sendline("/save")
    child.expect(r"saved checkpoint (\S+)")
    checkpoint_id = child.match.group(1)
    child.expect_exact(PROMPT)

    child.sendline("/help")
    child.expect_exact("/rewrite <text>")
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(f"resumes tutor \\({re.escape(agent_id)}\\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    # Run again: the same agent is resumed, no questions asked.
    child = spawn(stack, home)
    child.expect(f"Resuming agent tutor \\({re.escape(agent_id)}\\)")
    child.expect_exact(PROMPT)
    child.sendline("second visit")
    child.expect_exact("🤖 You said: second visit")
    child.expect_exact(PROMPT)
    child.sendline(f"/load {checkpoint_id}")
    child.expect(f"restored checkpoint {re.escape(checkpoint_id)}")
    child.expect_exact(PROMPT)
    # /dump lists recall memory, which the indexer fills behind the turns (typically well under a
    # second, longer on a stack's very first turns while the embedding model loads): wait for it.
    with Mnemo(base_url=stack.base_url, api_key=stack.api_key) as client:
        asyncio.run(eventually(lambda: any("hello from the terminal" in h.message.text
                                           for h in client.agents.recall(agent_id).hits),
                               timeout=30, message="the first session's messages in recall"))
    child.sendline("/dump 10")
    child.expect("hello from the terminal")
    child.expect_exact(PROMPT)
    child.sendline("/retry")
    child.expect_exact("retrying: ")
    child.expect_exact("🤖 You said: hello from the terminal")
    child.expect_exact(PROMPT)
    child.sendline("/rewrite A better reply.")
    child.expect_exact("rewrote the last reply")
    child.expect_exact(PROMPT)
    child.sendline("/pop 2")
    child.expect_exact("popped 2 message(s)")
    child.expect_exact(PROMPT)
    child.sendline("/load " + checkpoint_id)
    child.expect_exact(PROMPT)
    child.sendline("/nonsense")
    child.expect("unknown command /nonsense")
    child.expect_exact(PROMPT)
    export_file = tmp_path / "tutor.json"
    with Mnemo(base_url=stack.base_url, api_key=stack.api_key) as client:
        export_file.write_bytes(client.agents.export(agent_id))
    child.sendline(f"/load {export_file}")
    child.expect(r"now chatting with tutor \((agent-[^)]+)\)")
    imported_id = child.match.group(1)
    assert imported_id != agent_id
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    # The restore really rolled the agent's queue back to the checkpoint.
    with Mnemo(base_url=stack.base_url, api_key=stack.api_key) as client:
        agent = client.agents.get(agent_id)
        assert agent.name == "tutor"
        assert agent.counts is not None and agent.counts.queue == queue_at_save


def test_management_commands(stack: Stack, scripted_llm: ScriptedLLM, tmp_path: Path) -> None:
    env = {**stack.env, "MNEMO_HOME": str(tmp_path), "MNEMO_API_KEY": stack.api_key, "TERM": "dumb"}
    persona = tmp_path / "pirate.txt"
    persona.write_text("I am a pirate who speaks in rhymes.")
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\nThe lighthouse keeper's name is Odile.\n" * 20)

    def mnemo(*args: str) -> str:
        out = pexpect.run(venv_bin("mnemo"), args=list(args), env=env, encoding="utf-8", timeout=60,
                          withexitstatus=True)
        text, status = out
        assert status == 0, text
        return text

    assert "added persona pirate" in mnemo("personas", "add", str(persona))
    assert "pirate" in mnemo("personas", "list")
    assert "basic" in mnemo("humans", "list")
    child = pexpect.spawn(venv_bin("mnemo"), ["run", "--yes", "--persona", "pirate", "--name", "captain"],
                          env={**env, "TERM": "dumb"}, encoding="utf-8", timeout=60)
    child.expect(r"Created agent captain \((agent-[^)]+)\)")
    agent_id = child.match.group(1)
    child.expect_exact(PROMPT)
    child.sendline("/exit")
    child.expect(pexpect.EOF)

    assert agent_id in mnemo("agents", "list")
    assert "pirate who speaks in rhymes" in mnemo("agents", "show", agent_id)
    assert "passages" in mnemo("load", agent_id, str(doc))
    export_file = tmp_path / "captain.json"
    assert "exported" in mnemo("export", agent_id, str(export_file))
    assert export_file.stat().st_size > 0
    imported = mnemo("import", str(export_file))
    new_id = re.search(r"imported agent captain \((agent-[^)]+)\)", imported)
    assert new_id and new_id.group(1) != agent_id, imported
    assert f"deleted {agent_id}" in mnemo("agents", "delete", "--yes", agent_id)
    text, status = pexpect.run(venv_bin("mnemo"), args=["agents", "show", agent_id], env=env,
                               encoding="utf-8", timeout=60, withexitstatus=True)
    assert status == 1 and "error:" in text and "404" in text and "Traceback" not in text
