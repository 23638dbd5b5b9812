"""A started orchestrator loads its default model's tokenizer ahead of the first turn."""

from __future__ import annotations

from typing import Any

from mnemo.tokens import count_text, encodings, tokenizer_name
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_orchestrator import agent_factory, chat_llm, orchestrator_factory, run_turn  # noqa: F401


async def test_the_default_models_tokenizer_is_loaded_at_start(orchestrator_factory: Any, agent_factory: Any,
                                                               nc: Any) -> None:
    count_text("gpt-4o-mini", "warm-up")  # counts already cached do not stand in for the tokenizer
    encodings.clear_encodings()
    service = await orchestrator_factory(default_model="gpt-4o-mini")
    assert service.warmup is not None
    await service.warmup
    # Loaded with no turn run yet: the first turn counts with it instead of building it.
    assert tokenizer_name("gpt-4o-mini") in encodings.loaded_encodings()
    agent = await agent_factory(model="gpt-4o-mini")
    result = await run_turn(nc, "t1", agent.config.id, "hello there")
    assert result.stop_reason == "end_turn" and result.replies == ["You said: hello there"]
