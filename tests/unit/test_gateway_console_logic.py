"""The console's read models without I/O: the context window of a state, timelines from events,
usage buckets, trace links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mnemo.gateway.console import SECTIONS, UsageWindow, context_window, timelines, trace_link, usage_series
from mnemo.v1 import common_pb2, steps_pb2

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


def usage_event(turn: str, step: int, seq: int, **timing: object) -> common_pb2.Event:
    return common_pb2.Event(type="usage", turn_id=turn, step=step, seq=seq, created_at=f"2026-03-02T12:00:0{step}Z",
                            usage=common_pb2.UsageReport(
                                prompt_tokens=100, completion_tokens=10, total_tokens=110, model="m",
                                context_tokens=90, context_window=1000,
                                context=steps_pb2.ContextBreakdown(
                                    system_instructions=30, function_schemas=20, memory_metadata=5, core_memory=10,
                                    summary=0, message_queue=25, reserved_completion=200, warning_fraction=0.7,
                                    compaction_fraction=0.9),
                                timing=steps_pb2.StepTiming(**timing)))  # type: ignore[arg-type]


def test_the_context_window_is_the_last_usage_event():
    config = common_pb2.AgentConfig(model="m", context_window=1000)
    assert not context_window("a", config, []).available
    events = [usage_event("t", 1, 5), usage_event("t", 2, 7),
              common_pb2.Event(type="turn_completed", turn_id="t", step=2, seq=8)]
    ctx = context_window("a", config, events)
    assert ctx.available and ctx.turn_id == "t" and ctx.step == 2
    assert [s.name for s in ctx.sections] == [n for n, _ in SECTIONS]
    assert ctx.total_tokens == sum(s.tokens for s in ctx.sections) == 290 == ctx.prompt_tokens + 200
    assert (ctx.warning_tokens, ctx.compaction_tokens) == (560, 720)   # fractions of 1000 - 200


def test_timelines_group_by_turn_count_a_republished_step_once_and_report_failures():
    events = [
        common_pb2.Event(type="inner_thought", turn_id="t1", step=1, seq=1, created_at="2026-03-02T12:00:00Z"),
        usage_event("t1", 1, 2, stop_reason="heartbeat", trace_id="ab" * 16),
        usage_event("t1", 1, 3, stop_reason="heartbeat", trace_id="ab" * 16),   # the same step, republished
        usage_event("t1", 2, 4, stop_reason="end_turn"),
        common_pb2.Event(type="turn_completed", turn_id="t1", step=2, seq=5,
                         turn_completed=common_pb2.TurnCompleted(stop_reason="end_turn")),
        common_pb2.Event(type="turn_failed", turn_id="t2", seq=6, turn_failed=common_pb2.TurnFailed(error="boom")),
        usage_event("t3", 1, 7),
    ]
    t1, t2, t3 = timelines(events, "https://trace/{trace_id}")
    assert [s.step for s in t1.steps] == [1, 2] and t1.steps[0].seq == 3
    assert t1.steps[0].trace_url == "https://trace/" + "ab" * 16 and t1.steps[1].trace_url == ""
    assert (t1.first_seq, t1.last_seq, t1.completed, t1.stop_reason) == (1, 5, True, "end_turn")
    assert (t2.completed, t2.stop_reason, t2.error, list(t2.steps)) == (True, "error", "boom", [])
    assert not t3.completed and t3.stop_reason == ""


@pytest.mark.parametrize("template,trace_id,want", [
    ("http://j/trace/{trace_id}", "abc", "http://j/trace/abc"),
    ("http://j/trace/", "abc", "http://j/trace/abc"),
    ("", "abc", ""),
    ("http://j/trace/{trace_id}", "", ""),
])
def test_trace_link(template, trace_id, want):
    assert trace_link(template, trace_id) == want


def test_usage_buckets_and_totals():
    window = UsageWindow.parse("2026-03-02T12:01:30Z", 600, now=NOW)
    assert window.since == datetime(2026, 3, 2, 12, 0, tzinfo=UTC) and window.bucket_seconds == 600
    records = [
        {"ts": "2026-03-02T12:00:01Z", "model": "m", "prompt_tokens": 10, "completion_tokens": 1},
        {"ts": "2026-03-02T12:09:59Z", "model": "e", "prompt_tokens": 5, "completion_tokens": 0},
        {"ts": "2026-03-02T12:25:00Z", "model": "m", "prompt_tokens": 7, "completion_tokens": 2},
        {"ts": "2026-03-02T11:59:59Z", "model": "m", "prompt_tokens": 99},   # before the period
        {"ts": "not a time", "model": "m", "prompt_tokens": 99},
        {"ts": "2026-03-02T12:26:00Z", "model": "m", "prompt_tokens": "x"},
    ]
    usage = usage_series("a", "t", window, records)
    assert [b.start for b in usage.buckets] == ["2026-03-02T12:00:00Z", "2026-03-02T12:10:00Z",
                                                "2026-03-02T12:20:00Z", "2026-03-02T12:30:00Z"]
    assert [(b.prompt_tokens, b.completion_tokens, b.calls) for b in usage.buckets] == [
        (15, 1, 2), (0, 0, 0), (7, 2, 1), (0, 0, 0)]
    assert [(t.model, t.prompt_tokens, t.completion_tokens, t.calls) for t in usage.totals] == [
        ("e", 5, 0, 1), ("m", 17, 3, 2)]


@pytest.mark.parametrize("since,bucket,reason", [
    ("tomorrow", 3600, "RFC 3339"),
    ((NOW + timedelta(hours=1)).isoformat(), 3600, "future"),
    ("2020-01-01", 60, "buckets"),
    ("", 30, "bucket_seconds"),
])
def test_bad_usage_windows_say_why(since, bucket, reason):
    with pytest.raises(ValueError, match=reason):
        UsageWindow.parse(since, bucket, now=NOW)


def test_the_default_usage_window_is_the_last_day_by_hour():
    window = UsageWindow.parse("", 0, now=NOW)
    assert window.bucket_seconds == 3600 and window.since == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
