"""The web console's read models, built from what the platform already records (no transport here).

- the context window of the agent's last step: from the step's `usage` event (kept in the agent's
  state with the last step's events; a last step that never called the model sends the reader
  back to the events stream);
- turn timelines: a turn's events (each step's `usage` event carries its timings);
- usage over time: the llm-proxy's usage records of the agent, in time buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mnemo.common import ids
from mnemo.v1 import common_pb2, console_pb2, llm_pb2

# The context bar's sections, in the order the request is laid out.
SECTIONS = (
    ("system_instructions", "System instructions"),
    ("function_schemas", "Function schemas"),
    ("memory_metadata", "Memory metadata"),
    ("core_memory", "Core memory"),
    ("summary", "Summary"),
    ("message_queue", "Message queue"),
    ("reserved_completion", "Reserved completion"),
)
MAX_BUCKETS = 2000


def context_window(agent_id: str, config: common_pb2.AgentConfig,
                   events: Iterable[common_pb2.Event]) -> console_pb2.ContextWindow:
    """The context of the last step among `events` that called the model, by section."""
    usage_events = [e for e in events if e.type == "usage" and e.usage.HasField("context")]
    if not usage_events:
        return console_pb2.ContextWindow(agent_id=agent_id, available=False, model=config.model,
                                         context_window=config.context_window)
    event = usage_events[-1]
    u, c = event.usage, event.usage.context
    sections = [console_pb2.ContextSection(name=name, label=label, tokens=getattr(c, name))
                for name, label in SECTIONS]
    budget = max(1, u.context_window - c.reserved_completion)
    return console_pb2.ContextWindow(
        agent_id=agent_id, available=True, turn_id=event.turn_id, step=event.step, created_at=event.created_at,
        model=u.model or config.model, context_window=u.context_window, prompt_tokens=u.context_tokens,
        total_tokens=sum(s.tokens for s in sections), sections=sections,
        warning_tokens=int(c.warning_fraction * budget), compaction_tokens=int(c.compaction_fraction * budget),
        warning_fraction=c.warning_fraction, compaction_fraction=c.compaction_fraction)


def trace_link(template: str, trace_id: str) -> str:
    """`template` with `{trace_id}` replaced (appended when it has no placeholder); "" without either."""
    if not template or not trace_id:
        return ""
    return template.replace("{trace_id}", trace_id) if "{trace_id}" in template else template + trace_id


def timelines(events: Iterable[common_pb2.Event], trace_url: str = "") -> list[console_pb2.TurnTimeline]:
    """One timeline per turn, in the order the turns started; a step seen twice (a republished
    step) counts once."""
    out: dict[str, console_pb2.TurnTimeline] = {}
    for e in events:
        if not e.turn_id:
            continue
        tl = out.get(e.turn_id)
        if tl is None:
            tl = out[e.turn_id] = console_pb2.TurnTimeline(turn_id=e.turn_id, started_at=e.created_at,
                                                           first_seq=e.seq)
        tl.last_seq, tl.ended_at = e.seq, e.created_at
        if e.type == "usage":
            u = e.usage
            step = console_pb2.TurnStep(
                step=e.step, created_at=e.created_at, model=u.model, prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens, total_tokens=u.total_tokens, context_tokens=u.context_tokens,
                timing=u.timing, trace_url=trace_link(trace_url, u.timing.trace_id), seq=e.seq)
            for i, known in enumerate(tl.steps):
                if known.step == e.step:
                    tl.steps[i].CopyFrom(step)
                    break
            else:
                tl.steps.append(step)
        elif e.type == "turn_completed":
            tl.completed, tl.stop_reason = True, e.turn_completed.stop_reason or "end_turn"
        elif e.type == "turn_failed":
            tl.completed, tl.stop_reason, tl.error = True, "error", e.turn_failed.error
    return list(out.values())


@dataclass(frozen=True)
class UsageWindow:
    """The period and bucket size of a usage query."""

    since: datetime
    bucket_seconds: int
    until: datetime

    @classmethod
    def parse(cls, since: str, bucket_seconds: int, now: datetime | None = None) -> UsageWindow:
        """ValueError (with the reason) for a bad time, a future start or too many buckets."""
        now = now or datetime.now(UTC)
        bucket = bucket_seconds or 3600
        if not 60 <= bucket <= 86_400:
            raise ValueError("bucket_seconds must be between 60 and 86400")
        try:
            start = ids.parse_time(since) if since else now - timedelta(days=1)
        except ValueError as exc:
            raise ValueError(f"since is not an RFC 3339 time: {since[:64]!r}") from exc
        if start > now:
            raise ValueError("since is in the future")
        aligned = datetime.fromtimestamp(math.floor(start.timestamp() / bucket) * bucket, UTC)
        if (now - aligned).total_seconds() / bucket > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} buckets: raise bucket_seconds or move since later")
        return cls(aligned, bucket, now)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def usage_series(agent_id: str, tenant_id: str, window: UsageWindow,
                 records: Iterable[dict[str, Any]]) -> console_pb2.AgentUsage:
    """The usage records of one agent (the llm-proxy's JSON records) in buckets, with totals per model."""
    n = int((window.until - window.since).total_seconds() // window.bucket_seconds) + 1
    start = window.since.timestamp()
    buckets = [console_pb2.UsageBucket(start=_iso(window.since + timedelta(seconds=i * window.bucket_seconds)))
               for i in range(n)]
    totals: dict[str, llm_pb2.UsageTotal] = {}
    for rec in records:
        try:
            at = ids.parse_time(str(rec.get("ts") or ""))
            prompt, completion = int(rec.get("prompt_tokens", 0)), int(rec.get("completion_tokens", 0))
        except (ValueError, TypeError):
            continue
        i = int((at.timestamp() - start) // window.bucket_seconds)
        if not 0 <= i < n:
            continue
        b = buckets[i]
        b.prompt_tokens += prompt
        b.completion_tokens += completion
        b.calls += 1
        model = str(rec.get("model", ""))
        t = totals.setdefault(model, llm_pb2.UsageTotal(tenant_id=tenant_id, agent_id=agent_id, model=model))
        t.prompt_tokens += prompt
        t.completion_tokens += completion
        t.calls += 1
    return console_pb2.AgentUsage(agent_id=agent_id, since=_iso(window.since), bucket_seconds=window.bucket_seconds,
                                  buckets=buckets, totals=[totals[m] for m in sorted(totals)])
