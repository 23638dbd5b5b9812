"""What a step's usage event records about the step: its request by section and its timings.

A few integers per step, taken from counts the planner already made (`Assembled`) and clocks the
driver reads around its calls; the console's context bar and turn timeline are drawn from them.
"""

from __future__ import annotations

import time

from mnemo.orchestrator.context import Assembled
from mnemo.orchestrator.limits import Limits
from mnemo.v1 import steps_pb2

HEARTBEAT = "heartbeat"   # StepTiming.stop_reason of a step that another step follows


def context_breakdown(asm: Assembled, limits: Limits) -> steps_pb2.ContextBreakdown:
    """The step's request by section; the six prompt sections add up to `asm.prompt_tokens`."""
    framing, preset, metadata, core, summary = asm.system_parts
    return steps_pb2.ContextBreakdown(
        system_instructions=asm.base_tokens + framing + preset, function_schemas=asm.tools_tokens,
        memory_metadata=metadata, core_memory=core, summary=summary,
        message_queue=sum(asm.queue_tokens) + sum(asm.input_tokens),
        reserved_completion=limits.reserved_completion_tokens,
        warning_fraction=limits.memory_warning_fraction,
        compaction_fraction=limits.compaction_trigger_fraction)


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading), to 0.01 ms."""
    return round((time.perf_counter() - started) * 1000, 2)
