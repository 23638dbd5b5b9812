"""The offline path: no provider configured, a real turn on the local SmolLM2 model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mnemo.client import Mnemo
from tests.e2e.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def offline_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("offline") / "home").start(timeout=300)
    yield s
    s.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_model_answers_through_send_message(offline_stack: Stack) -> None:
    assert "OPENAI_API_KEY" not in offline_stack.env
    with Mnemo(base_url=offline_stack.base_url, api_key=offline_stack.api_key) as client:
        agent = client.agents.create(name="offline", limits={"max_steps": 2})
        # Streamed: a slow machine may take longer than the gateway's wait for POST /messages.
        events = list(client.agents.stream_message(agent.id, "Hi! Please say hello back."))
    types = [e.type for e in events]
    assert types and types[-1] == "turn_completed", types
    # A send_message call surfaces as assistant_message (the orchestrator emits it from the call).
    replies = [e for e in events if e.type == "assistant_message"]
    assert replies and any((e.text or "").strip() for e in replies), events
    assert not any(e.type == "turn_failed" for e in events)
    usage = [e for e in events if e.type == "usage"]
    assert usage and (usage[0].model_extra or {}).get("model", "").startswith("smollm2"), usage

