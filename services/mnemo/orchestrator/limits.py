"""Per-agent limits: AgentLimits with zero fields filled from the orchestrator's settings."""

from __future__ import annotations

from dataclasses import dataclass

from mnemo.common.config import Settings
from mnemo.v1 import common_pb2

DEFAULT_CONTEXT_WINDOW = 8192


@dataclass(frozen=True)
class Limits:
    max_steps: int
    max_tokens_per_turn: int
    function_result_max_chars: int
    memory_warning_fraction: float
    compaction_trigger_fraction: float
    compaction_target_fraction: float
    keep_last_messages: int
    reserved_completion_tokens: int
    loop_repeats: int


def resolve_limits(agent: common_pb2.AgentLimits, settings: Settings, turn_max_steps: int = 0) -> Limits:
    """The effective limits of one turn: turn override, then agent values, then settings."""
    return Limits(
        max_steps=turn_max_steps or agent.max_steps or settings.orchestrator_max_steps,
        max_tokens_per_turn=agent.max_tokens_per_turn or settings.orchestrator_max_tokens_per_turn,
        function_result_max_chars=(agent.function_result_max_chars
                                   or settings.orchestrator_function_result_max_chars),
        memory_warning_fraction=agent.memory_warning_fraction or 0.70,
        compaction_trigger_fraction=agent.compaction_trigger_fraction or 0.90,
        compaction_target_fraction=agent.compaction_target_fraction or 0.50,
        keep_last_messages=agent.keep_last_messages or settings.orchestrator_keep_last_messages,
        reserved_completion_tokens=(agent.reserved_completion_tokens
                                    or settings.orchestrator_reserved_completion_tokens),
        loop_repeats=settings.orchestrator_loop_repeats,
    )
