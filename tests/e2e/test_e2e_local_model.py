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
        result = client.agents.send_message(agent.id, "Hi! Please say hello back.")
    types = [e.type for e in result.events]
    assert types[-1] == "turn_completed", types
    calls = [e for e in result.events if e.type == "function_call"]
    assert calls, f"the local model made no function call: {types}"
    replies = [e for e in result.events if e.type == "assistant_message"]
    assert replies and any((e.text or "").strip() for e in replies), result.events
    assert any(c.name == "send_message" for c in calls)

