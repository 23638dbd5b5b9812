"""Time for `mnemo up` to be healthy and the RSS of the idle stack (scripted provider, then offline).

    .venv/bin/python bench/stack_up.py [--offline-only | --provider-only]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnemo.client import Mnemo
from tests.e2e.stack import Stack
from tests.scripted_llm import ScriptedLLM


def measure(label: str, llm_base_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp) / "home", llm_base_url=llm_base_url).start(timeout=300)
        try:
            cold = stack.startup_seconds
            time.sleep(3)  # let the idle stack settle before reading RSS
            rss = stack.rss_bytes() / 2**20
            with Mnemo(base_url=stack.base_url, api_key=stack.api_key) as client:
                agent = client.agents.create(name="bench")
                began = time.monotonic()
                client.agents.send_message(agent.id, "hello")
                first_turn = time.monotonic() - began
            rss_after = stack.rss_bytes() / 2**20
        finally:
            stack.stop()
        again = Stack(Path(tmp) / "home", llm_base_url=llm_base_url)
        again.ports, again.env = stack.ports, stack.env
        again.start(timeout=300)
        warm = again.startup_seconds
        again.stop()
    print(f"{label}: up healthy in {cold:.1f}s (restart {warm:.1f}s); idle RSS {rss:.0f} MiB; "
          f"first turn {first_turn:.2f}s; RSS after a turn {rss_after:.0f} MiB")


def main() -> None:
    args = set(sys.argv[1:])
    if "--offline-only" not in args:
        with ScriptedLLM() as llm:
            measure("provider (scripted OpenAI-compatible)", llm.base_url)
    if "--provider-only" not in args:
        measure("offline (local SmolLM2)", None)


if __name__ == "__main__":
    main()
